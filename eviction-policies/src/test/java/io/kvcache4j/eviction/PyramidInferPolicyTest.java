package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

class PyramidInferPolicyTest {

    /** The paper's cosine schedule, compounded across layers, scaled so the mean is the budget. */
    @Test
    void deeperLayersHoldFewerTokens() {
        long seed = TestSeeds.seed("pyramid-layers");
        SplittableRandom r = TestSeeds.random(seed);
        int layers = 8;
        ModelShape shape = new ModelShape(layers, 2, 1, 16);
        PyramidInferPolicy.Config config = PyramidInferPolicy.Config.defaults(Budget.tokens(160, 4, 16));
        PyramidInferPolicy policy = new PyramidInferPolicy(config);
        // expected: s_l = prod_{j<l} r_j, r_j = 0.1 (cos(pi j / 8) + 1) / 2 + 0.9; context 140 split by s_l
        double[] s = new double[layers];
        double acc = 1;
        double sum = 0;
        for (int l = 0; l < layers; l++) {
            s[l] = acc;
            sum += acc;
            acc *= 0.1 * (Math.cos(Math.PI * l / layers) + 1) / 2 + 0.9;
        }
        int[] expected = new int[layers];
        int[] keep = new int[layers];
        for (int l = 0; l < layers; l++) {
            expected[l] = 20 + (int) Math.round(140.0 * layers * s[l] / sum);
            double g = 0.9 * (Math.cos(Math.PI * l / layers) + 1) / 2 + 0.1;
            keep[l] = Math.max(1, (int) (16 * 0.9 * g));
        }
        int prompt = 600;
        int decode = 64;
        try (KvCache cache = KvCache.builder(shape).policy(policy).build()) {
            Streams.prefill(cache, r, prompt, 128);
            cache.endPrefill();
            int[] held = new int[layers];
            long total = 0;
            for (int l = 0; l < layers; l++) {
                held[l] = cache.retainedTokens(l, 0);
                total += held[l];
                assertEquals(expected[l], policy.budgetTokens(shape, l, 0), "budget of layer " + l);
                assertEquals(expected[l], held[l], "held by layer " + l);
            }
            System.out.println("[pyramidinfer] tokens held per layer after a 600-token prompt, mean budget 160: "
                    + java.util.Arrays.toString(held) + " (total " + total + ", uniform " + 160 * layers + ")");
            for (int l = 1; l < layers; l++) {
                assertTrue(held[l] <= held[l - 1], "layer " + l + " holds more than layer " + (l - 1));
            }
            assertTrue(held[layers - 1] < held[0] - 30, "last layer " + held[layers - 1] + " vs first " + held[0]);
            assertTrue(Math.abs(total - 160L * layers) <= layers, "total " + total);

            float[] k = new float[shape.kvRowFloats()];
            float[] v = new float[shape.kvRowFloats()];
            float[] q = new float[shape.queryRowFloats()];
            float[] out = new float[shape.queryRowFloats()];
            for (int t = 0; t < decode; t++) {
                Streams.step(cache, r, k, v, q, out);
            }
            // 64 generated tokens, recent 16, blocks of 16: three blocks compressed to keep_l each
            int[] grown = new int[layers];
            for (int l = 0; l < layers; l++) {
                grown[l] = cache.retainedTokens(l, 0) - held[l];
                assertEquals(3 * keep[l] + 16, grown[l], "growth of layer " + l + ", seed=" + seed);
                assertTrue(cache.retainedTokens(l, 0) <= policy.maxRetainedTokens(shape, l, 0, decode));
            }
            System.out.println("[pyramidinfer] tokens kept per 16-token generated block: "
                    + java.util.Arrays.toString(keep) + "; growth over 64 decode steps "
                    + java.util.Arrays.toString(grown));
        }
    }

    /**
     * Prefill stage: the recent queries (the observers) decide. Orthonormal keys make every logit 6 or
     * 0; the observers attend three targets, the earlier queries three decoys.
     */
    @Test
    void prefillKeepsWhatTheRecentQueriesAttendAndGenerationKeepsWhatFollowingQueriesAttend() {
        int d = 128;
        ModelShape shape = new ModelShape(2, 2, 1, d);
        PyramidInferPolicy.Config config = PyramidInferPolicy.Config.defaults(Budget.tokens(40, 4, 16));
        int prompt = 40 + 40;
        int[] targets = {30, 50, 60};
        int[] decoys = {10, 20, 45};
        float logit = (float) (6 * Math.sqrt(d));
        try (KvCache cache = KvCache.builder(shape)
                .dtype(KvDType.F32)
                .policy(new PyramidInferPolicy(config))
                .build()) {
            for (int t = 0; t < prompt; t++) {
                float[] q = new float[2 * d];
                for (int j : t >= prompt - 16 ? targets : decoys) {
                    if (j < t) {
                        q[j] = logit;
                        q[d + j] = logit;
                    }
                }
                step(cache, t, q, d);
            }
            cache.endPrefill();
            for (int l = 0; l < 2; l++) {
                TreeSet<Integer> held = Streams.positions(cache, l, 0);
                assertEquals(40, held.size(), "layer " + l);
                for (int t : targets) {
                    assertTrue(held.contains(t), "target " + t + " evicted at layer " + l + ": " + held);
                }
                assertTrue(held.containsAll(Streams.range(0, 4)) && held.containsAll(Streams.range(64, 80)));
            }
            // Generation: block [80, 96) is compressed once 16 more queries follow it (at 112). Those
            // queries attend token 90 of the block.
            for (int t = prompt; t < 112; t++) {
                float[] q = new float[2 * d];
                if (t >= 96) {
                    q[90] = logit;
                    q[d + 90] = logit;
                }
                step(cache, t, q, d);
            }
            // keep = int(16 * 0.9 * g): g = 1.0 at layer 0 (14 of 16), 0.55 at layer 1 (7 of 16)
            int[] keep = {14, 7};
            for (int l = 0; l < 2; l++) {
                TreeSet<Integer> held = Streams.positions(cache, l, 0);
                TreeSet<Integer> block = new TreeSet<>(held.subSet(80, 96));
                assertEquals(keep[l], block.size(), "layer " + l + " block " + block);
                assertTrue(block.contains(90), "layer " + l + " block " + block);
                assertEquals(40 + keep[l] + 16, held.size(), "layer " + l);
            }
        }
    }

    private static void step(KvCache cache, int t, float[] q, int d) {
        float[] key = new float[d];
        key[t] = 1;
        for (int l = 0; l < cache.shape().layers(); l++) {
            cache.append(l, key, 0, key, 0, 1);
            cache.attend(l, q, 0, 1, new float[q.length], 0);
        }
    }
}
