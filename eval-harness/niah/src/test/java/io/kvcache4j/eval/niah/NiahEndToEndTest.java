package io.kvcache4j.eval.niah;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The harness on the shipped model: prompts, scoring, memory accounting and the report contract. */
class NiahEndToEndTest {
    @TempDir
    Path dir;

    static TextCodec codec(Tokenizer tok) {
        return new TextCodec() {
            @Override
            public int[] encode(String text) {
                return tok.encode(text, false, false);
            }

            @Override
            public String decode(int[] ids, int from, int to) {
                return tok.decode(Arrays.copyOfRange(ids, from, to));
            }

            @Override
            public int bosId() {
                return tok.bosId();
            }

            @Override
            public int eosId() {
                return tok.eosId();
            }
        };
    }

    @Test
    void promptsHaveExactLengthAndTheNeedleWhereAsked() throws Exception {
        try (GgufModel model = GgufModel.open(ShippedModel.path())) {
            Tokenizer tok = Tokenizer.fromGguf(model);
            TextCodec codec = codec(tok);
            Haystack hay = Haystack.builtIn(codec);
            long seed = 20261128L;
            System.out.println("[seed] niah-prompts seed=" + seed);
            SplittableRandom r = new SplittableRandom(seed);
            for (int length : new int[] {128, 512, 1000, 4096}) {
                for (double depth : new double[] {0, 0.25, 0.5, 1}) {
                    Needle needle = Needle.standard("Quiet Harbor", "7365012");
                    NiahPrompt p = NiahPrompt.build(hay, codec, needle, length, depth, r);
                    assertEquals(length, p.length(), "prompt length, depth " + depth);
                    assertEquals(tok.bosId(), p.context()[0]);
                    String text = codec.decode(p.all(), 1, p.length());
                    assertTrue(text.contains("The special magic number for Quiet Harbor is 7365012."), text);
                    assertTrue(text.endsWith("\nAnswer: The special magic number for Quiet Harbor is"), text);
                    if (depth == 0) {
                        assertTrue(text.startsWith("The special magic number"), text);
                        assertEquals(1, p.needleStart());
                    } else {
                        if (length >= 512) {
                            assertEquals(depth, p.depth(), 0.1, "realised depth at L=" + length);
                        }
                    }
                    // The prompt is exactly what tokenizing its text gives (sentence-wise tokenization is exact).
                    assertEquals(p.length() - 1, codec.encode(text).length, "re-tokenized length at L=" + length);
                }
            }
        }
    }

    @Test
    void fullCacheFindsTheNeedleAndTheReportKeepsItsContract() throws Exception {
        try (GgufLlama model = GgufLlama.open(ShippedModel.path())) {
            Tokenizer tok = Tokenizer.fromGguf(model.model());
            TextCodec codec = codec(tok);
            NiahRunner runner = new NiahRunner(model, codec, Haystack.builtIn(codec));
            NiahOptions o = new NiahOptions(
                    List.of("full", "streaming"),
                    List.of(64.0),
                    List.of("none"),
                    List.of(NiahMode.QUERY_AGNOSTIC),
                    List.of(512),
                    List.of(0.0, 0.5, 1.0),
                    null,
                    null,
                    null,
                    null,
                    1,
                    7,
                    2,
                    16,
                    dir);
            List<NiahResult> results = runner.run(o, System.out);
            assertEquals(6, results.size());
            for (NiahResult r : results) {
                assertTrue(r.kvBytesFull() > 0);
                if (r.policy().equals("full")) {
                    assertTrue(r.correct(), "full cache must answer: " + r);
                    assertEquals(r.kvBytesFull(), r.kvBytesRetained(), "full f16 cache holds what kvBytesFull says");
                } else {
                    assertTrue(
                            r.kvBytesRetained() < r.kvBytesFull() / 4,
                            "streaming at 64 tokens of 512 holds " + r.kvBytesRetained() + " of " + r.kvBytesFull());
                }
            }
            // Same seed, other thread count: identical results.
            NiahOptions one = new NiahOptions(
                    o.policies(),
                    o.budgets(),
                    o.quants(),
                    o.modes(),
                    o.lengths(),
                    o.depths(),
                    null,
                    null,
                    null,
                    null,
                    1,
                    7,
                    1,
                    16,
                    dir);
            List<NiahResult> again = runner.run(one, System.out);
            for (int i = 0; i < results.size(); i++) {
                assertEquals(results.get(i).output(), again.get(i).output(), "deterministic output, cell " + i);
                assertEquals(results.get(i).kvBytesRetained(), again.get(i).kvBytesRetained());
            }
            NiahReport.write(dir, "kvcache4j-niah.gguf", results);
            // Read back with a JSON library, as other tools do: every field of every cell, as run.
            var root = new com.fasterxml.jackson.databind.ObjectMapper()
                    .readTree(dir.resolve("results.json").toFile());
            assertEquals("kvcache4j-niah.gguf", root.get("model").asText());
            var runs = root.get("runs");
            assertEquals(6, runs.size(), root.toPrettyString());
            for (int i = 0; i < runs.size(); i++) {
                var run = runs.get(i);
                NiahResult want = results.get(i);
                assertEquals(want.policy(), run.get("policy").asText());
                assertEquals(want.budget(), run.get("budget").asDouble());
                assertEquals(want.budgetTokens(), run.get("budgetTokens").asInt());
                assertEquals("none", run.get("quant").asText());
                assertEquals("query-agnostic", run.get("mode").asText());
                assertEquals(512, run.get("length").asInt());
                assertEquals(want.depth(), run.get("depth").asDouble());
                assertEquals(want.correct(), run.get("correct").asBoolean());
                assertEquals(want.output(), run.get("output").asText());
                assertEquals(want.key(), run.get("key").asText());
                assertEquals(want.kvBytesRetained(), run.get("kvBytesRetained").asLong());
                assertEquals(want.kvBytesFull(), run.get("kvBytesFull").asLong());
                assertTrue(run.has("millis") && run.has("needleDepth") && run.has("sample") && run.has("expected"));
            }
            assertEquals(7, Files.readAllLines(dir.resolve("results.csv")).size(), "header + 6 rows");
            for (String f : new String[] {
                "heatmap-full-none-query-agnostic.png",
                "heatmap-streaming-b64-none-query-agnostic.png",
                "accuracy-vs-bytes.png",
                "report.html"
            }) {
                assertTrue(Files.size(dir.resolve(f)) > 1000, f);
            }
        }
    }
}
