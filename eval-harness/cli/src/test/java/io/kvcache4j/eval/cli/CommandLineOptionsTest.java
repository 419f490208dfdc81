package io.kvcache4j.eval.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.eval.niah.NiahRunner;
import io.kvcache4j.eval.niah.ShippedModel;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The exact line a hostile user of the command line gets: every bad option is one line on standard
 * error, {@code kvcache4j <command>: <option> <value>: <what is wrong; what is allowed>}, with exit
 * status 2, before any work (the model is not loaded, no report folder is left behind); a model file
 * that cannot be loaded is one line with status 1; never a stack trace or a Java class name.
 */
class CommandLineOptionsTest {
    @TempDir
    Path dir;

    /** A file that is not GGUF: loading it would fail, so any error about another option came first. */
    Path notGguf;

    private String previousHome;

    record Outcome(int status, String out, String err) {}

    static Outcome run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status;
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
                PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            status = Main.run(args, o, e, () -> new ByteArrayInputStream(new byte[0]));
        }
        return new Outcome(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    /** Runs {@code args}, which must fail with {@code status} and exactly the one line {@code expected}. */
    static Outcome fails(int status, String expected, String... args) {
        Outcome o = run(args);
        assertEquals(expected + "\n", o.err(), "stderr of " + String.join(" ", args));
        assertEquals(status, o.status(), "exit status of " + String.join(" ", args));
        assertOneCleanLine(o.err());
        return o;
    }

    static void assertOneCleanLine(String err) {
        assertEquals(1, err.lines().count(), err);
        for (String banned : new String[] {"Exception", "Error:", "java.", "\tat ", "picocli", "io.kvcache4j"}) {
            assertFalse(err.contains(banned), "'" + banned + "' in: " + err);
        }
    }

    @BeforeEach
    void files() throws Exception {
        notGguf = dir.resolve("not-a-model.gguf");
        Files.writeString(notGguf, "this is not a GGUF file, whatever its name says");
        previousHome = System.getProperty(ModelFiles.HOME_PROPERTY);
        System.setProperty(
                ModelFiles.HOME_PROPERTY,
                ShippedModel.path().getParent().getParent().toString());
    }

    @AfterEach
    void restoreHome() {
        if (previousHome == null) {
            System.clearProperty(ModelFiles.HOME_PROPERTY);
        } else {
            System.setProperty(ModelFiles.HOME_PROPERTY, previousHome);
        }
    }

    static Stream<Arguments> badOptions() {
        String budget = "budget must be a fraction in (0, 1) or a whole number of tokens >= 1, was 1.5";
        String policies = "installed: " + String.join(", ", EvictionPolicies.names());
        return Stream.of(
                // Counts that would exhaust memory or time are bounded, with the range named.
                Arguments.of(
                        new String[] {"niah", "--depths", "2000000000"},
                        "kvcache4j niah: --depths 2000000000: count 2000000000 is out of range; allowed: [1, 1001]"
                                + " (or a list of fractions)"),
                Arguments.of(
                        new String[] {"niah", "--depths", "0,0.5,1.5"},
                        "kvcache4j niah: --depths 0,0.5,1.5: depth 1.5 is out of range; allowed: fractions in [0, 1]"),
                Arguments.of(
                        new String[] {"niah", "--depths", "0.5,0.50"},
                        "kvcache4j niah: --depths 0.5,0.50: depth 0.50 is listed twice"),
                Arguments.of(
                        new String[] {"niah", "--lengths", "512,99999999"},
                        "kvcache4j niah: --lengths 99999999: length 99999999 is out of range; allowed: [64, 1048576]"),
                Arguments.of(
                        new String[] {"niah", "--samples", "99999999999999999999"},
                        "kvcache4j niah: --samples 99999999999999999999: '99999999999999999999' is not a whole"
                                + " number; allowed: [1, 1000]"),
                Arguments.of(
                        new String[] {"niah", "--threads", "0"},
                        "kvcache4j niah: --threads 0: 0 is out of range; allowed: [1, 256]"),
                Arguments.of(
                        new String[] {"niah", "--max-new-tokens", "1025"},
                        "kvcache4j niah: --max-new-tokens 1025: 1025 is out of range; allowed: [1, 1024]"),
                Arguments.of(
                        new String[] {"niah", "--policy", "full", "--samples", "1000", "--depths", "1001"},
                        "kvcache4j niah: --policy, --budget, --quant, --mode, --lengths, --depths and --samples make"
                                + " 4004000 cells; at most 100000 allowed"),
                // Names and budgets: niah and generate check them the same way, through the registries.
                Arguments.of(new String[] {"niah", "--budget", "0.1,1.5"}, "kvcache4j niah: --budget 1.5: " + budget),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--budget", "1.5"},
                        "kvcache4j generate: --budget 1.5: " + budget),
                Arguments.of(
                        new String[] {"niah", "--budget", "NaN"},
                        "kvcache4j niah: --budget NaN: budget must be a fraction in (0, 1) or a whole number of"
                                + " tokens >= 1, was NaN"),
                Arguments.of(
                        new String[] {"niah", "--budget", "0.1,0.1"}, "kvcache4j niah: --budget: 0.1 is listed twice"),
                Arguments.of(
                        new String[] {"niah", "--policy", "h2o", "--budget", "0.01", "--lengths", "4096,512"},
                        "kvcache4j niah: --budget 0.01 at length 512 for policy h2o: budget of 5 tokens is too small:"
                                + " it must hold 4 sink tokens, a recent window of 1 tokens and at least one more, so"
                                + " at least 6 tokens"),
                Arguments.of(
                        new String[] {"niah", "--policy", "full,bogus"},
                        "kvcache4j niah: --policy bogus: unknown eviction policy 'bogus'; " + policies),
                Arguments.of(
                        new String[] {"niah", "--policy", "h2o,H2O"}, "kvcache4j niah: --policy: h2o is listed twice"),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--policy", "bogus"},
                        "kvcache4j generate: --policy bogus: unknown eviction policy 'bogus'; " + policies),
                Arguments.of(
                        new String[] {"niah", "--mode", "both"},
                        "kvcache4j niah: --mode both: unknown mode 'both'; allowed: query-agnostic, query-aware"),
                Arguments.of(
                        new String[] {"niah", "--quant", "int3"},
                        "kvcache4j niah: --quant int3: unknown quant 'int3'; installed: "
                                + String.join(", ", NiahRunner.quantNames())),
                Arguments.of(
                        new String[] {"niah", "--quant", "int4:g=64:r=32"},
                        "kvcache4j niah: --quant int4:g=64:r=32: storage 'int4:g=64:r=32': residualTokens must be"
                                + " a multiple of groupTokens 64, was 32"),
                Arguments.of(
                        new String[] {"niah", "--quant", "int4:bits=3"},
                        "kvcache4j niah: --quant int4:bits=3: storage 'int4:bits=3': unknown option 'bits';"
                                + " options: g, r, vg, scales"),
                Arguments.of(
                        new String[] {"niah", "--quant", "int4:g=64:r=128", "--policy", "snapkv", "--lengths", "512"},
                        "kvcache4j niah: --quant int4:g=64:r=128 with --budget 0.1 at length 512 for policy snapkv:"
                                + " residualTokens must be in [0, 51] (the budget of 51 tokens), was 128"),
                Arguments.of(
                        new String[] {"niah", "--quant", "none,int4", "--policy", "snapkv", "--lengths", "512"},
                        "kvcache4j niah: --quant int4 with --budget 0.1 at length 512 for policy snapkv: residualTokens"
                                + " must be in [0, 51] (the budget of 51 tokens), was 128"),
                Arguments.of(
                        new String[] {"niah", "--lengths", "512,1024,512"},
                        "kvcache4j niah: --lengths: 512 is listed twice"),
                // Options that go together, or not.
                Arguments.of(
                        new String[] {"niah", "--needle", "The code is blue."},
                        "kvcache4j niah: --question is missing: --needle, --question and --answer go together"
                                + " (--answer-prefix needs them)"),
                Arguments.of(
                        new String[] {"niah", "--needle", "N.", "--question", "Q?", "--answer", "A", "--key", "k"},
                        "kvcache4j niah: --key fixes the standard needle; it cannot be combined with --needle"),
                Arguments.of(
                        new String[] {"niah", "--value", "0123"},
                        "kvcache4j niah: --value must be 5 to 8 digits with a non-zero first digit, was '0123'"),
                Arguments.of(
                        new String[] {"niah", "--key", "room 101"},
                        "kvcache4j niah: --key room 101: KEY must be one or more words without digits, was"
                                + " 'room 101'"),
                // generate's own bounds.
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--temperature", "-1"},
                        "kvcache4j generate: --temperature -1: -1 is out of range; allowed: 0 (greedy) or a finite"
                                + " number > 0, at most 3.4028235E38"),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--max-tokens", "0"},
                        "kvcache4j generate: --max-tokens 0: 0 is out of range; allowed: [1, 1048576]"),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--chunk", "70000"},
                        "kvcache4j generate: --chunk 70000: 70000 is out of range; allowed: [1, 65536]"),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--dtype", "f8"},
                        "kvcache4j generate: --dtype f8: unknown KV dtype 'f8'; allowed: f32, f16, bf16"),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--seed", "0x1f"},
                        "kvcache4j generate: --seed 0x1f: '0x1f' is not a whole number; allowed:"
                                + " [-9223372036854775808, 9223372036854775807]"),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--policy", "h2o", "--budget", "5"},
                        "kvcache4j generate: --budget 5: budget of 5 tokens is too small: it must hold 4 sink tokens,"
                                + " a recent window of 1 tokens and at least one more, so at least 6 tokens"),
                Arguments.of(new String[] {"niah", "--out", ""}, "kvcache4j niah: --out must not be empty"),
                Arguments.of(new String[] {"generate"}, "kvcache4j generate: --prompt TEXT is required"),
                Arguments.of(
                        new String[] {"generate", "--prompt", ""}, "kvcache4j generate: --prompt must not be empty"),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--seed"},
                        "kvcache4j generate: --seed N: a value is needed"),
                Arguments.of(
                        new String[] {"generate", "--prompt", "x", "--seed", "1", "--seed", "2"},
                        "kvcache4j generate: --seed is given more than once; give it once"),
                // Unknown words.
                Arguments.of(
                        new String[] {"tokenize", "--model", "m.gguf", "--modle", "x"},
                        "kvcache4j tokenize: unknown option '--modle'; allowed options: --model, --cases,"
                                + " --add-special, --parse-special, --help, --version"),
                Arguments.of(
                        new String[] {"frobnicate"},
                        "kvcache4j: unknown command 'frobnicate'; allowed: niah, generate, tokenize, inspect, bench"
                                + " (or --help, --version)"),
                Arguments.of(
                        new String[] {"inspect", "--model", "m.gguf", "--elements", "-1"},
                        "kvcache4j inspect: --elements -1: -1 is out of range; allowed: [0, 1000000]"),
                Arguments.of(new String[] {"tokenize"}, "kvcache4j tokenize: --model FILE.gguf is required"));
    }

    /**
     * The GPU storage kinds are installed (listed) everywhere; where no CUDA device can be used, asking
     * for one is refused before any work, in one line naming the reason (this test does not run where
     * a GPU is usable: there the command would start the run).
     */
    @Test
    void gpuStorageWithoutAGpuIsRefusedInOneLine() {
        org.junit.jupiter.api.Assumptions.assumeTrue(
                io.kvcache4j.cuda.CudaBackends.available().isEmpty(), "a CUDA GPU is usable here");
        Outcome o = run("niah", "--quant", "none,cuda-f16", "--lengths", "512");
        assertEquals(2, o.status(), o.err());
        assertTrue(
                o.err().startsWith("kvcache4j niah: --quant cuda-f16: storage 'cuda-f16' needs a CUDA GPU: "), o.err());
        assertTrue(o.err().contains("use 'f16' for CPU attention"), o.err());
        assertOneCleanLine(o.err());
        // the tiered and quantized GPU kinds too, before any cell of the kinds listed first runs
        for (String kind : new String[] {"cuda-int4", "hgca-cuda", "retrieval-cuda", "headinfer-cuda"}) {
            o = run("niah", "--quant", "none,hgca," + kind, "--lengths", "512", "--budget", "0.1");
            assertEquals(2, o.status(), o.err());
            assertTrue(
                    o.err()
                            .startsWith(
                                    "kvcache4j niah: --quant " + kind + ": storage '" + kind + "' needs a CUDA GPU: "),
                    o.err());
            assertOneCleanLine(o.err());
            assertEquals("", o.out(), "no cell ran");
        }
    }

    @ParameterizedTest
    @MethodSource("badOptions")
    void badOptionsAreOneExactLineWithStatus2(String[] args, String expected) {
        Outcome o = fails(2, expected, args);
        assertEquals("", o.out(), "nothing on standard output");
        // Again with a model file that cannot load: the same message, so the option was checked first.
        if (args.length > 1 && !Arrays.asList(args).contains("--model")) {
            String[] withModel = Arrays.copyOf(args, args.length + 2);
            withModel[args.length] = "--model";
            withModel[args.length + 1] = notGguf.toString();
            fails(2, expected, withModel);
        }
    }

    @Test
    void optionsAreCheckedBeforeTheModelIsLoaded() {
        String model = notGguf.toString();
        fails(
                2,
                "kvcache4j niah: --depths 2000000000: count 2000000000 is out of range; allowed: [1, 1001] (or a list"
                        + " of fractions)",
                "niah",
                "--model",
                model,
                "--depths",
                "2000000000");
        // With every option valid, the model is what fails: status 1, one line naming the file.
        Outcome o = run("generate", "--model", model, "--prompt", "x");
        assertEquals(1, o.status(), o.err());
        assertOneCleanLine(o.err());
        assertTrue(o.err().startsWith("kvcache4j generate: "), o.err());
        assertTrue(o.err().contains(model) || o.err().contains("magic"), o.err());
    }

    @Test
    void noReportFolderIsLeftWhenARunCannotStart() throws Exception {
        Path out = dir.resolve("reports").resolve("run");
        fails(
                2,
                "kvcache4j niah: --lengths 10: length 10 is out of range; allowed: [64, 1048576]",
                "niah",
                "--out",
                out.toString(),
                "--lengths",
                "10");
        fails(
                2,
                "kvcache4j niah: --haystack /dev/null: not a regular file",
                "niah",
                "--out",
                out.toString(),
                "--haystack",
                "/dev/null");
        Path missing = dir.resolve("missing.txt");
        fails(
                2,
                "kvcache4j niah: --haystack " + missing + ": no such file",
                "niah",
                "--out",
                out.toString(),
                "--haystack",
                missing.toString());
        Path few = Files.writeString(dir.resolve("few.txt"), "One sentence. Two sentences.");
        fails(
                2,
                "kvcache4j niah: --haystack " + few + ": haystack 'few.txt' has 2 sentences; need at least 8"
                        + " (sentences end with '.', '!' or '?')",
                "niah",
                "--out",
                out.toString(),
                "--haystack",
                few.toString());
        fails(
                2,
                "kvcache4j niah: --model " + dir + ": is a directory; a file is needed",
                "niah",
                "--out",
                out.toString(),
                "--model",
                dir.toString());
        assertFalse(Files.exists(dir.resolve("reports")), "no report folder for a command line that cannot run");
        // Every option valid but the model corrupt: the folder made to probe --out is removed again.
        Outcome o = run("niah", "--out", out.toString(), "--model", notGguf.toString());
        assertEquals(1, o.status(), o.err());
        assertOneCleanLine(o.err());
        assertTrue(o.err().startsWith("kvcache4j niah: "), o.err());
        assertFalse(Files.exists(dir.resolve("reports")), "the probed report folder is removed after the failure");
    }

    @Test
    void anUnwritableReportFolderIsFoundBeforeAnyWork() throws Exception {
        Path file = dir.resolve("file");
        Files.writeString(file, "x");
        fails(
                2,
                "kvcache4j niah: --out " + file + " is not a writable directory (" + file
                        + " exists and is not a directory)",
                "niah",
                "--out",
                file.toString(),
                "--model",
                notGguf.toString());
        Path under = file.resolve("sub");
        Outcome o = run("niah", "--out", under.toString(), "--model", notGguf.toString());
        assertEquals(2, o.status(), o.err());
        assertOneCleanLine(o.err());
        assertTrue(o.err().startsWith("kvcache4j niah: --out " + under + " is not a writable directory ("), o.err());
        Path report = dir.resolve("report");
        Files.createDirectories(report.resolve("results.json"));
        fails(
                2,
                "kvcache4j niah: --out " + report + ": results.json exists there and cannot be replaced",
                "niah",
                "--out",
                report.toString(),
                "--model",
                notGguf.toString());
    }

    @Test
    void aPromptLengthTheNeedleDoesNotFitIsRejectedBeforeTheFirstCell() {
        String needle = "The secret code of the northern lighthouse keeper is written on the third stone of the old"
                + " harbour wall, under the moss.";
        Path out = dir.resolve("short");
        Outcome o = run(
                "niah",
                "--policy",
                "full",
                "--lengths",
                "64",
                "--depths",
                "0.5",
                "--needle",
                needle,
                "--question",
                "Where is the secret code of the northern lighthouse keeper written?",
                "--answer",
                "third stone",
                "--out",
                out.toString());
        assertEquals(2, o.status(), o.err());
        assertOneCleanLine(o.err());
        assertTrue(
                o.err()
                        .matches("kvcache4j niah: --lengths 64: length 64 is too short for this needle and question"
                                + " \\(\\d+ tokens at least\\)\n"),
                o.err());
        assertEquals("", o.out(), "no cell ran");
        assertFalse(Files.exists(out), "no report folder");
    }

    @Test
    void helpAndVersionArePrintedOnStandardOutput() {
        Outcome o = run("niah", "--help");
        assertEquals(0, o.status());
        assertTrue(o.out().startsWith("Usage: kvcache4j niah"), o.out());
        assertTrue(o.out().contains("--depths=N|LIST"), o.out());
        assertTrue(
                o.out().replaceAll("\\s+", " ").contains("installed: " + String.join(", ", EvictionPolicies.names())),
                o.out());
        assertEquals("", o.err());
        for (String command : new String[] {"generate", "tokenize", "inspect"}) {
            Outcome help = run(command, "--help");
            assertEquals(0, help.status(), command);
            assertTrue(help.out().startsWith("Usage: kvcache4j " + command), help.out());
        }
        Outcome none = run();
        assertEquals(2, none.status());
        assertTrue(none.out().startsWith("Usage: kvcache4j"), none.out());
        assertTrue(none.out().contains("bench"), none.out());
        Outcome version = run("--version");
        assertEquals(0, version.status());
        assertTrue(version.out().matches("(?s)kvcache4j \\d+\\.\\d+\\.\\d+.*"), version.out());
        assertEquals(version.out(), run("niah", "--version").out());
    }

    @Test
    void anAtSignStartsAPromptNotAnArgumentFile() {
        Outcome o = run("generate", "--prompt", "@" + dir.resolve("no-such-file"), "--max-tokens", "0");
        assertEquals(2, o.status(), o.err());
        assertEquals("kvcache4j generate: --max-tokens 0: 0 is out of range; allowed: [1, 1048576]\n", o.err());
    }
}
