package io.kvcache4j.eval.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvcache4j.TestSeeds;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The pre-tokenizer splits: hand-checked cases for the GPT-2, Llama 3 and Qwen2 expressions, and a
 * differential test of the hand-written scanners against java.util.regex over the collapsed text on
 * random strings mixing letters, digits, marks, symbols, contractions and ASCII and Unicode
 * whitespace (including characters where White_Space differs from {@link Character#isWhitespace}).
 */
class PreTokenizerTest {
    private static final String[] ALPHABET = {
        "a", "b", "Z", "é", "中", "1", "7", "٣", "½", " ", " ", " ", "  ", "\t", "\n", "\r", "\u00A0", "\u3000",
        "\u0085", "\u001C", ".", "!", "?", "'", "'s", "'T", "'ll", "'Re", "$", "~", "+", "🦙", "\u0301", "\u0001",
        "\u200B", "-", "_"
    };

    static final PreTokenizer.Splitter GPT2_SCANNER = (cps, c, p) -> new PreTokenizer.Gpt2Scanner().run(cps, p);
    static final PreTokenizer.Splitter LLAMA3_SCANNER = (cps, c, p) -> new PreTokenizer.Llama3Scanner().run(cps, p);

    static String randomText(SplittableRandom r) {
        StringBuilder sb = new StringBuilder();
        int n = r.nextInt(1, 14);
        for (int i = 0; i < n; i++) {
            sb.append(ALPHABET[r.nextInt(ALPHABET.length)]);
        }
        return sb.toString();
    }

    static List<String> split(PreTokenizer.Splitter s, String text) {
        int[] cps = text.codePoints().toArray();
        IntList pieces = new IntList();
        if (cps.length > 0) {
            pieces.add(cps.length);
        }
        IntList out = s.split(cps, PreTokenizer.collapse(cps), pieces);
        List<String> words = new ArrayList<>();
        int at = 0;
        for (int i = 0; i < out.size(); i++) {
            words.add(new String(cps, at, out.get(i)));
            at += out.get(i);
        }
        return words;
    }

    static String show(Object o) {
        return o.toString()
                .replace("\n", "\\n")
                .replace("\r", "\\r")
                .replace("\t", "\\t")
                .replace("\u00A0", "<A0>")
                .replace("\u3000", "<3000>")
                .replace("\u0085", "<85>");
    }

    @Test
    void scannersAgreeWithTheRegexOverCollapsedText() {
        long seed = TestSeeds.seed("scanner-vs-regex");
        SplittableRandom r = TestSeeds.random(seed);
        PreTokenizer.Splitter gpt2Regex = new PreTokenizer.RegexSplitter(PreTokenizer.GPT2);
        PreTokenizer.Splitter llama3Regex = new PreTokenizer.RegexSplitter(PreTokenizer.LLAMA3);
        for (int i = 0; i < 5000; i++) {
            String t = randomText(r);
            assertEquals(split(gpt2Regex, t), split(GPT2_SCANNER, t), "GPT-2 on " + show(t) + " seed=" + seed);
            assertEquals(split(llama3Regex, t), split(LLAMA3_SCANNER, t), "Llama 3 on " + show(t) + " seed=" + seed);
        }
    }

    @Test
    void gpt2Splits() {
        assertEquals(
                List.of("Hello", ",", " world", "'s", " 123", "!!", "  ", " x", "  \n"),
                split(GPT2_SCANNER, "Hello, world's 123!!   x  \n"));
        assertEquals(List.of(" ", "\u00A0", "a"), split(GPT2_SCANNER, " \u00A0a"), "NBSP is whitespace, not a letter");
        assertEquals(List.of("\u001C", "a"), split(GPT2_SCANNER, "\u001Ca"), "U+001C is not White_Space");
        assertEquals(List.of("'", "T"), split(GPT2_SCANNER, "'T"), "no contraction: GPT-2's is case-sensitive");
    }

    @Test
    void llama3Splits() {
        assertEquals(List.of("'T", "'re", " you"), split(LLAMA3_SCANNER, "'T're you"));
        assertEquals(List.of("123", "456", "7", " ", "89"), split(LLAMA3_SCANNER, "1234567 89"));
        assertEquals(
                List.of("$hello", " world", "!!\n\n", "  ", " x"), split(LLAMA3_SCANNER, "$hello world!!\n\n   x"));
        assertEquals(List.of("a", " \n\n", "b"), split(LLAMA3_SCANNER, "a \n\nb"));
    }

    @Test
    void qwen2SplitsDigitsOneByOne() {
        PreTokenizer.Splitter qwen2 = new PreTokenizer.RegexSplitter(PreTokenizer.QWEN2);
        assertEquals(List.of("1", "2", "3", " ", "4"), split(qwen2, "123 4"));
        assertEquals(List.of("天", "～"), split(qwen2, "天～"));
        assertEquals(List.of("Hello", ",", " y", "'all"), split(qwen2, "Hello, y'all"));
    }

    @Test
    void collapsedExpressionKeepsLlamaCppsAsciiClasses() {
        assertEquals("[\\x{D1}0-9]+", PreTokenizer.collapseExpression("\\p{N}+"));
        assertEquals("[^\\s\\x{D2}A-Za-z\\x{D1}0-9]", PreTokenizer.collapseExpression("[^\\s\\p{L}\\p{N}]"));
        assertEquals("[\\x{D3}!-#%-*,-/:-;?-@\\[-\\]_\\{\\}\\$]", PreTokenizer.collapseExpression("[\\p{P}\\$]"));
    }
}
