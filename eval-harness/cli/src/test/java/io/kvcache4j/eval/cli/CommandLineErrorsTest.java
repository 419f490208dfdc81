package io.kvcache4j.eval.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.eval.niah.ShippedModel;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every command checks its options before it works: a bad value ends in one line on stderr that
 * names the option, the value and what is allowed, a non-zero exit code, no stack trace and no Java
 * class name, and nothing is written.
 */
class CommandLineErrorsTest {
    @TempDir
    Path dir;

    private record Result(int code, String out, String err) {}

    private static Result run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        String previous = System.getProperty(ModelFiles.HOME_PROPERTY);
        System.setProperty(
                ModelFiles.HOME_PROPERTY,
                ShippedModel.path().getParent().getParent().toString());
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
                PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            int code = Main.run(args, o, e);
            return new Result(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            if (previous == null) {
                System.clearProperty(ModelFiles.HOME_PROPERTY);
            } else {
                System.setProperty(ModelFiles.HOME_PROPERTY, previous);
            }
        }
    }

    /** One line, naming what it must name, with no trace of Java internals. */
    private static void assertOneLine(Result r, String... mustContain) {
        assertEquals(2, r.code(), r.err());
        String err = r.err().strip();
        assertFalse(err.contains("\n"), "one line: " + err);
        assertFalse(err.contains("Exception") || err.contains("java.") || err.contains("\tat "), err);
        for (String s : mustContain) {
            assertTrue(err.contains(s), "'" + s + "' in: " + err);
        }
    }

    @Test
    void niahRejectsBadOptionsBeforeLoadingAnything() throws Exception {
        Path out = dir.resolve("report");
        assertOneLine(run("niah", "--budget", "1.5", "--out", out.toString()), "--budget 1.5", "(0, 1)");
        assertOneLine(run("niah", "--budget", "3", "--out", out.toString()), "--budget 3", "at least 6");
        assertOneLine(run("niah", "--policy", "tova", "--out", out.toString()), "--policy", "tova", "installed:");
        assertOneLine(run("niah", "--quant", "int3", "--out", out.toString()), "--quant", "int3", "installed:");
        assertOneLine(
                run("niah", "--depths", "2000000000", "--out", out.toString()), "--depths", "2000000000", "[1, 1001]");
        assertOneLine(run("niah", "--lengths", "10", "--out", out.toString()), "length 10", "[64, 1048576]");
        assertOneLine(run("niah", "--threads", "0", "--out", out.toString()), "--threads");
        assertFalse(Files.exists(out), "nothing is written when an option is bad");
        Path file = Files.writeString(dir.resolve("a-file"), "x");
        assertOneLine(
                run("niah", "--lengths", "512", "--depths", "1", "--policy", "full", "--out", file.toString()),
                "--out",
                "not a writable directory");
    }

    @Test
    void generateValidatesItsBudgetLikeNiah() {
        assertOneLine(run("generate", "--prompt", "hello", "--policy", "h2o", "--budget", "1.5"), "--budget 1.5");
        assertOneLine(run("generate", "--prompt", "hello", "--policy", "tova"), "tova", "installed:");
        assertOneLine(run("generate", "--prompt", "hello", "--temperature", "hot"), "--temperature", "hot");
        assertOneLine(run("generate", "--prompt", "hello", "--dtype", "f8"), "dtype", "f8");
        // A budget that resolves below what the policy needs on this prompt: named with the prompt length.
        assertOneLine(
                run("generate", "--prompt", "hello there", "--policy", "h2o", "--budget", "0.1"),
                "--budget 0.1 for a prompt of",
                "too small");
    }

    @Test
    void generateRunsTheSharedLoopOnTheShippedModel() {
        Result r = run("generate", "--prompt", "The value of", "--max-tokens", "6", "--policy", "h2o", "--budget", "8");
        assertEquals(0, r.code(), r.err());
        assertFalse(r.out().isBlank(), "generated text on stdout");
        Result again =
                run("generate", "--prompt", "The value of", "--max-tokens", "6", "--policy", "h2o", "--budget", "8");
        assertEquals(r.out(), again.out(), "greedy generation is deterministic");
    }
}
