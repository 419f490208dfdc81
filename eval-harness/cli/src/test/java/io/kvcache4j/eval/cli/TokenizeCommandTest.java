package io.kvcache4j.eval.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.eval.Fixtures;
import io.kvcache4j.eval.gguf.GgmlType;
import io.kvcache4j.eval.gguf.GgufWriter;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class TokenizeCommandTest {
    @TempDir
    Path dir;

    /** Runs a command line that must succeed, with {@code stdin} as standard input; returns standard output. */
    private static byte[] run(String stdin, String... args) {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try (PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
                PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            int status = Main.run(args, out, e, () -> new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8)));
            assertEquals(0, status, err.toString(StandardCharsets.UTF_8));
        }
        return bytes.toByteArray();
    }

    @ParameterizedTest
    @ValueSource(strings = {"llama-spm", "llama-bpe", "gpt-2", "qwen2"})
    void casesOutputEqualsTheOutFileByteForByte(String name) throws Exception {
        Path gguf = Fixtures.vocab(name);
        byte[] got = run("", "tokenize", "--model", gguf.toString(), "--cases", gguf + ".inp");
        assertArrayEquals(Files.readAllBytes(Path.of(gguf + ".out")), got, name);
    }

    @Test
    void eachStdinLineIsOneInput() throws Exception {
        Path gguf = Fixtures.vocab("qwen2");
        String lines = "Hello world\n\n<|endoftext|>\n";
        String plain = new String(run(lines, "tokenize", "--model", gguf.toString()), StandardCharsets.UTF_8);
        assertEquals(" 9707 1879\n\n 27 91 8691 723 427 91 29\n", plain);
        String special = new String(
                run(lines, "tokenize", "--model", gguf.toString(), "--parse-special"), StandardCharsets.UTF_8);
        assertEquals(" 9707 1879\n\n 151643\n", special);
    }

    @Test
    void usageErrorsExitWithStatus2() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8);
        PrintStream o = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        assertEquals(2, Main.run(new String[] {"tokenize"}, o, e));
        assertEquals(
                2,
                Main.run(
                        new String[] {
                            "tokenize", "--model", dir.resolve("missing").toString()
                        },
                        o,
                        e));
        assertEquals(2, Main.run(new String[] {"tokenize", "--modle", "x"}, o, e));
        String msg = err.toString(StandardCharsets.UTF_8);
        assertTrue(msg.contains("--model FILE.gguf is required"), msg);
        assertTrue(msg.contains("no such file"), msg);
        assertTrue(msg.contains("unknown option '--modle'"), msg);
    }

    @Test
    void inspectPrintsMetadataAndTensorTable() throws Exception {
        Path p = dir.resolve("m.gguf");
        new GgufWriter()
                .putString("general.architecture", "llama")
                .putArray(
                        "tokenizer.ggml.tokens",
                        io.kvcache4j.eval.gguf.GgufArray.ofStrings(java.util.List.of("a", "b", "c", "d", "e")))
                .addTensor("blk.0.attn_q.weight", GgmlType.Q8_0, new long[] {32, 2}, new float[64])
                .write(p);
        String out = new String(run("", "inspect", "--model", p.toString(), "--elements", "2"), StandardCharsets.UTF_8);
        assertTrue(out.contains("GGUF v3"), out);
        assertTrue(out.contains("general.architecture: STRING = \"llama\""), out);
        assertTrue(out.contains("tokenizer.ggml.tokens: ARRAY = [STRING × 5] [\"a\", \"b\", …]"), out);
        assertTrue(out.matches("(?s).*blk\\.0\\.attn_q\\.weight\\s+Q8_0\\s+\\[32, 2\\].*68 bytes.*"), out);
        assertTrue(Main.commands().containsKey("inspect") && Main.commands().containsKey("tokenize"));
    }
}
