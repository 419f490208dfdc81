package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openjdk.jmh.results.AggregationPolicy;
import org.openjdk.jmh.results.ScalarResult;

/** {@code bench}'s options are checked before any benchmark runs: one line, exit status 2. */
class BenchMainTest {
    @TempDir
    Path dir;

    private record Outcome(int status, String out, String err) {}

    private static Outcome run(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status;
        try (PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
                PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8)) {
            status = BenchMain.run(args, o, e);
        }
        return new Outcome(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void badOptionsAreOneLineWithStatus2() throws Exception {
        Outcome regex = run("--include", "Attention(", "--out", dir.resolve("r").toString());
        assertEquals(2, regex.status());
        assertTrue(
                regex.err().matches("kvcache4j bench: --include Attention\\(: not a regular expression \\(.*\\)\n"),
                regex.err());
        Outcome unknown = run("--fast");
        assertEquals(2, unknown.status());
        assertEquals(
                "kvcache4j bench: unknown option '--fast'; allowed: --quick, --out DIR, --include REGEX, --help\n",
                unknown.err());
        Path file = Files.writeString(dir.resolve("file"), "x");
        Outcome out = run("--out", file.toString());
        assertEquals(2, out.status());
        assertEquals(
                "kvcache4j bench: --out " + file + " is not a writable directory (a file of that name exists)\n",
                out.err());
        assertTrue(!Files.exists(dir.resolve("r")), "nothing created for a bad --include");
    }

    @Test
    void helpIsPrintedOnStandardOutput() {
        Outcome help = run("--help");
        assertEquals(0, help.status());
        assertTrue(help.out().startsWith("Usage: kvcache4j bench"), help.out());
        assertTrue(help.out().contains("--include=REGEX"), help.out());
    }

    /** The FMA floor the report divides by: 1,024 multiply-adds per token in vectors of the given width. */
    @Test
    void fmaFloorIsTheTokensMultiplyAddsAtTheMeasuredRate() {
        assertEquals(0.294 * 64, BenchMain.fmaFloorNanosPerToken(0.294, 16), 1e-12);
        assertEquals(0.5 * 128, BenchMain.fmaFloorNanosPerToken(0.5, 8), 1e-12);
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(
                IllegalArgumentException.class, () -> BenchMain.fmaFloorNanosPerToken(0, 16));
        assertEquals("fmaNs must be > 0 and lanes >= 1, were 0.0 and 16", e.getMessage());
    }

    @Test
    void alternatedRatiosComeFromTheSameIterationsCounters() {
        var counters = Map.of(
                "readNs", new ScalarResult("readNs", 5.193e9, "#", AggregationPolicy.SUM),
                "attentionNs", new ScalarResult("attentionNs", 11.0e9, "#", AggregationPolicy.SUM),
                "zeroNs", new ScalarResult("zeroNs", 0, "#", AggregationPolicy.SUM));
        assertEquals(5.193 / 11.0, BenchMain.counterRatio(counters, "readNs", "attentionNs"), 1e-12);
        assertNull(BenchMain.counterRatio(counters, "readNs", "missingNs"));
        assertNull(BenchMain.counterRatio(counters, "readNs", "zeroNs"));
        assertEquals(
                "f16 attention, 1048576 tokens, 16-token pages, 1 threads, alternated with a read of the same bytes"
                        + " in one fork (AttentionVsReadBenchmark): 0.4721 x the read ceiling",
                BenchMain.alternatedLine("1048576", "16", "1", 5.193 / 11.0));
    }
}
