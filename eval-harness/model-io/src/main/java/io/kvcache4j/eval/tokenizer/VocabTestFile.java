package io.kvcache4j.eval.tokenizer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * llama.cpp's tokenizer test-vector format: a {@code .inp} file holds input texts separated by the
 * line {@code __ggml_vocab_test__} (an input may span lines or be empty; the file ends with a
 * separator), and the matching {@code .out} file holds, for each input in order, one line of token
 * ids, each preceded by a space, without BOS.
 */
public final class VocabTestFile {
    /** The separator between inputs, with the newlines around it. */
    public static final String SEPARATOR = "\n__ggml_vocab_test__\n";

    private VocabTestFile() {}

    /** The inputs of a {@code .inp} file, split exactly as llama.cpp's test harness splits them. */
    public static List<String> readInputs(Path inp) throws IOException {
        return splitInputs(new String(Files.readAllBytes(inp), StandardCharsets.UTF_8));
    }

    /** Splits the content of a {@code .inp} file into its inputs. */
    public static List<String> splitInputs(String raw) {
        List<String> out = new ArrayList<>();
        int pos = 0;
        while (pos < raw.length()) {
            int next = raw.indexOf(SEPARATOR, pos);
            if (next < 0) {
                out.add(raw.substring(pos));
                break;
            }
            out.add(raw.substring(pos, next));
            pos = next + SEPARATOR.length();
        }
        return out;
    }

    /** The lines of a {@code .out} file (without line terminators). */
    public static List<String> readExpectedLines(Path out) throws IOException {
        return Files.readAllLines(out, StandardCharsets.UTF_8);
    }

    /** One {@code .out} line: each id preceded by a space. */
    public static String format(int[] ids) {
        StringBuilder sb = new StringBuilder(ids.length * 6);
        for (int id : ids) {
            sb.append(' ').append(id);
        }
        return sb.toString();
    }
}
