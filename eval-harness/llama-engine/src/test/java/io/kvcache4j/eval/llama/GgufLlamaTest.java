package io.kvcache4j.eval.llama;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.eval.gguf.GgmlType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The engine on random-weight GGUF files of every supported matrix type against the float64 forward
 * pass over the same (dequantized) weights: quantized dot products must agree with
 * dequantize-then-multiply.
 */
class GgufLlamaTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(
            value = GgmlType.class,
            names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K"})
    void logitsMatchTheFloat64ReferenceForEveryWeightType(GgmlType type) throws Exception {
        boolean kQuant = type == GgmlType.Q4_K || type == GgmlType.Q6_K;
        // K-quants need rows of 256; others use awkward-but-legal widths.
        LlamaConfig c = kQuant
                ? new LlamaConfig(64, 256, 2, 4, 2, 64, 512, 1e-5f, 10000f, 1f, 256)
                : new LlamaConfig(96, 64, 2, 4, 2, 16, 96, 1e-5f, 10000f, 1f, 256);
        long seed = 77 + type.ordinal();
        System.out.println("[seed] gguf-engine-" + type + " seed=" + seed);
        Path file = dir.resolve("random-" + type + ".gguf");
        RandomLlamaGguf.write(file, c, type, seed);
        assertTrue(Files.size(file) > 0);
        SplittableRandom r = new SplittableRandom(seed);
        int[] tokens = new int[19];
        for (int i = 0; i < tokens.length; i++) {
            tokens[i] = r.nextInt(c.vocabSize());
        }
        try (GgufLlama model = GgufLlama.open(file)) {
            double[][] ref = ReferenceLlama.logits(model, tokens);
            LlamaEngine engine = new LlamaEngine(model, 8);
            double worst = 0;
            try (KvCache cache =
                    KvCache.builder(c.cacheShape()).dtype(KvDType.F32).build()) {
                float[] logits = engine.forward(tokens, 0, 15, cache);
                worst = Math.max(worst, LlamaEngineTest.relErr(logits, ref[14]));
                for (int t = 15; t < tokens.length; t++) {
                    logits = engine.forward(tokens, t, 1, cache);
                    worst = Math.max(worst, LlamaEngineTest.relErr(logits, ref[t]));
                }
            }
            System.out.printf("%s: max relative logit error %.3g%n", type, worst);
            assertTrue(worst <= 1e-4, type + ": max relative logit error " + worst + " > 1e-4, seed=" + seed);
        }
    }

    @Test
    void aBlockCountTheFileCannotHoldIsRejectedBeforeAnythingIsSized() throws Exception {
        Path file = Files.createTempFile("absurd-layers", ".gguf");
        try {
            RandomLlamaGguf.write(
                    file, new LlamaConfig(64, 16, 1, 2, 1, 8, 32, 1e-5f, 10000f, 1f, 64), GgmlType.F32, 1);
            byte[] bytes = Files.readAllBytes(file);
            byte[] key = "llama.block_count".getBytes(java.nio.charset.StandardCharsets.UTF_8);
            int at = indexOf(bytes, key) + key.length + 4; // past the key and its value type
            java.nio.ByteBuffer.wrap(bytes)
                    .order(java.nio.ByteOrder.LITTLE_ENDIAN)
                    .putInt(at, 2_000_000_000);
            Files.write(file, bytes);
            var e = org.junit.jupiter.api.Assertions.assertThrows(
                    IllegalArgumentException.class, () -> GgufLlama.open(file).close());
            org.junit.jupiter.api.Assertions.assertEquals(
                    "llama.block_count is 2000000000, but the file holds 12 tensors, enough for at most 1 blocks"
                            + " of 9 tensors each",
                    e.getMessage());
        } finally {
            Files.deleteIfExists(file);
        }
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new IllegalStateException("key not found");
    }
}
