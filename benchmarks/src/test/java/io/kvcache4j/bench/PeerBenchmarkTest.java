package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.llama.LlamaConfig;
import io.kvcache4j.eval.llama.LlamaEngine;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The parts of the llama.cpp comparison that run without node: model file, worker, JSON, table. */
class PeerBenchmarkTest {

    static Path shippedModel() {
        for (Path p : List.of(Path.of("../model/kvcache4j-niah.gguf"), Path.of("model/kvcache4j-niah.gguf"))) {
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        throw new IllegalStateException(
                "shipped model not found from " + Path.of("").toAbsolutePath());
    }

    @Test
    void longModelCarriesTheShippedTokenizerAndRuns(@TempDir Path dir) throws Exception {
        Path gguf = dir.resolve("long.gguf");
        LlamaConfig shape = PeerBenchmark.writeLongModel(gguf, shippedModel(), 2048);
        try (GgufModel m = GgufModel.open(gguf);
                GgufModel shipped = GgufModel.open(shippedModel())) {
            assertEquals(2048, m.getInt("llama.context_length"));
            assertEquals(
                    shipped.getArray("tokenizer.ggml.tokens").size(),
                    m.getArray("tokenizer.ggml.tokens").size());
            assertEquals(shipped.getString("tokenizer.ggml.model"), m.getString("tokenizer.ggml.model"));
            String text = " The special magic number for violet lantern is 4718265.";
            assertArrayEquals(
                    Tokenizer.fromGguf(shipped).encode(text, true, false),
                    Tokenizer.fromGguf(m).encode(text, true, false));
        }
        assertEquals(512, shape.dim());
        assertEquals(8, shape.heads());
        assertEquals(2, shape.kvHeads());
        try (GgufLlama llama = GgufLlama.open(gguf)) {
            assertEquals(shape, llama.config());
            LlamaEngine engine = new LlamaEngine(llama, 16);
            int[] prompt = {2047, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150, 160, 170, 180};
            long[] times = new long[2];
            int[] a = PeerBenchmark.Worker.generate(engine, shape, prompt, 5, times);
            int[] b = PeerBenchmark.Worker.generate(engine, shape, prompt, 5, null);
            assertEquals(6, a.length);
            assertArrayEquals(a, b, "greedy generation is deterministic");
            assertTrue(times[0] > 0 && times[1] > 0);
            for (int t : a) {
                assertTrue(t >= 0 && t < shape.vocabSize());
            }
        }
    }

    @Test
    void jsonRoundTrips() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("s", "a \"quoted\" \\ line\nand tab\t");
        m.put("n", 1234.5);
        m.put("i", 7.0);
        m.put("list", List.of(1.0, 2.0, 3.0));
        m.put("nested", Map.of("x", false));
        m.put("none", null);
        String text = PeerBenchmark.Json.write(m);
        assertEquals(m, PeerBenchmark.Json.object("log line first\n" + text + "\n"));
        Map<String, Object> node =
                PeerBenchmark.Json.object("{\"a\": [1, -2.5e3, true], \"b\": {\"c\": \"\\u0041\"}, \"d\": null}");
        assertEquals(List.of(1.0, -2500.0, true), node.get("a"));
        assertEquals(Map.of("c", "A"), node.get("b"));
        assertTrue(node.containsKey("d"));
    }

    @Test
    void tableShowsRatiosAndMismatches() {
        PeerBenchmark.Measurement ours = new PeerBenchmark.Measurement("kvcache4j", 200, 100, 200, 100);
        PeerBenchmark.Measurement off = new PeerBenchmark.Measurement("llama.cpp FA off", 100, 50, 99, 49);
        Map<String, PeerBenchmark.Measurement> peers = new LinkedHashMap<>();
        peers.put("llama.cpp FA off", off);
        Map<String, String> notes = new LinkedHashMap<>();
        notes.put("llama.cpp FA off", "first 16 greedy tokens identical");
        notes.put("llama.cpp FA on", "MISMATCH: greedy tokens differ at generated token 3");
        String t = PeerBenchmark.table(List.of(new PeerBenchmark.Row("m", 2, 4032, 64, ours, peers, notes)));
        assertTrue(t.contains("| m | 2 | 4032 + 64 | prefill | 200 | 100 (99.0) | not timed | 2.00 | n/a | 2.00 |"), t);
        assertTrue(t.contains("| m | 2 | 4032 + 64 | decode | 100 | 50.0 (49.0) | not timed | 2.00 | n/a | 2.00 |"), t);
        assertTrue(t.contains("MISMATCH"), t);
    }

    @Test
    void coldPrefillIsReportedWhenMeasured() {
        Map<String, Object> ours = new LinkedHashMap<>();
        assertEquals(null, PeerBenchmark.coldPrefillLine(1, ours));
        ours.put("coldPrefillMs", 4023.4);
        ours.put("coldPrefillTokensPerSecond", 1002.1);
        assertEquals(
                "shipped model, threads 1: kvcache4j's first prefill in its fresh JVM (JIT compiling): 1002 tokens/s"
                        + " (4023 ms)",
                PeerBenchmark.coldPrefillLine(1, ours));
    }

    @Test
    void optionsAreChecked() {
        PeerBenchmark.Options o = PeerBenchmark.parse(new String[] {"--peers", "--threads", "1,2", "--out", "x"});
        assertEquals(List.of(1, 2), o.threads());
        assertEquals(32768, o.longContext());
        assertEquals(8, o.reps(), "enough repetitions for the JVM's kernels to be compiled by the best one");
        assertEquals(Path.of("x"), o.out());
        assertThrows(IllegalArgumentException.class, () -> PeerBenchmark.parse(new String[] {"--bogus"}));
        assertThrows(
                IllegalArgumentException.class,
                () -> PeerBenchmark.parse(new String[] {"--decode", "4", "--check", "16"}));
        assertThrows(IllegalArgumentException.class, () -> PeerBenchmark.parse(new String[] {"--long-context", "100"}));
    }
}
