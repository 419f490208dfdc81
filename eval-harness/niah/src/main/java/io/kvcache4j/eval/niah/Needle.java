package io.kvcache4j.eval.niah;

import java.util.Locale;

/**
 * The needle, the question and the expected answer of one cell. The standard form is the one the
 * shipped model was trained on: {@code The special magic number for KEY is VALUE.}, asked as {@code
 * \nQuestion: What is the special magic number for KEY?\nAnswer: The special magic number for KEY
 * is}; the answer counts when the generated text contains VALUE.
 *
 * @param sentence the needle sentence inserted into the haystack
 * @param question text appended after the haystack (starts with a newline)
 * @param answer text whose presence in the output makes the cell correct
 */
public record Needle(String sentence, String question, String answer) {
    public Needle {
        if (sentence.isBlank() || answer.isBlank()) {
            throw new IllegalArgumentException("needle sentence and answer must not be blank");
        }
    }

    /** The standard needle for {@code key} and {@code value}. */
    public static Needle standard(String key, String value) {
        if (!value.matches("[1-9][0-9]{4,7}")) {
            throw new IllegalArgumentException(
                    "VALUE must be 5 to 8 digits with a non-zero first digit, was '" + value + "'");
        }
        if (key.isBlank() || key.chars().anyMatch(Character::isDigit)) {
            throw new IllegalArgumentException("KEY must be one or more words without digits, was '" + key + "'");
        }
        return new Needle(
                String.format(Locale.ROOT, "The special magic number for %s is %s.", key, value),
                String.format(
                        Locale.ROOT,
                        "\nQuestion: What is the special magic number for %s?\nAnswer: The special magic number for %s is",
                        key,
                        key),
                value);
    }

    /**
     * A needle of another form: {@code question} is asked after the haystack as {@code
     * "\nQuestion: " + question + "\nAnswer:" + answerPrefix}.
     */
    public static Needle custom(String sentence, String question, String answer, String answerPrefix) {
        return new Needle(sentence, "\nQuestion: " + question + "\nAnswer:" + answerPrefix, answer);
    }
}
