package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

class H2OPolicyTest {

    /**
     * The score of each token is the softmax mass every query so far gave it (prompt queries
     * included), averaged over the GQA group: checked against a float64 recomputation.
     */
    @Test
    void scoreIsTheAttentionAccumulatedOverEveryQuery() {
        long seed = TestSeeds.seed("h2o-accumulated");
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(1, 6, 2, 16);
        int prompt = 40;
        int decode = 30;
        int total = prompt + decode;
        H2OPolicy.Config config = H2OPolicy.Config.defaults(Budget.tokens(1000, 0, 4));
        Capture capture = new Capture(new H2OPolicy(config));
        float[][] keys = new float[total][];
        float[][] queries = new float[total][];
        double[][] expected = new double[shape.kvHeads()][total];
        try (KvCache cache =
                KvCache.builder(shape).dtype(KvDType.F32).policy(capture).build()) {
            int t = 0;
            while (t < total) {
                int n = t < prompt ? Math.min(13, prompt - t) : 1;
                float[] k = TestSeeds.floats(r, n * shape.kvRowFloats(), 1);
                float[] v = TestSeeds.floats(r, n * shape.kvRowFloats(), 1);
                float[] q = TestSeeds.floats(r, n * shape.queryRowFloats(), 3);
                for (int i = 0; i < n; i++) {
                    keys[t + i] =
                            java.util.Arrays.copyOfRange(k, i * shape.kvRowFloats(), (i + 1) * shape.kvRowFloats());
                    queries[t + i] = java.util.Arrays.copyOfRange(
                            q, i * shape.queryRowFloats(), (i + 1) * shape.queryRowFloats());
                }
                cache.append(0, k, 0, v, 0, n);
                cache.attend(0, q, 0, n, new float[n * shape.queryRowFloats()], 0);
                if (t + n == prompt) {
                    cache.endPrefill();
                }
                t += n;
            }
            for (int p = 0; p < total; p++) {
                accumulate(shape, keys, queries[p], p, expected);
            }
            H2OPolicy.Tracker tracker = capture.tracker();
            for (int h = 0; h < shape.kvHeads(); h++) {
                HeadSlots head = tracker.heads[0][h];
                float[] score = head.floatColumn(tracker.scoreColumn);
                for (int s = 0; s < head.count(); s++) {
                    int pos = head.position(s);
                    assertEquals(
                            expected[h][pos],
                            score[s],
                            1e-4 + 1e-4 * expected[h][pos],
                            "head " + h + " position " + pos + " seed=" + seed);
                }
            }
        }
    }

    /** Adds the group-mean softmax mass of the query at {@code p} over keys {@code 0..p} (float64). */
    static void accumulate(ModelShape shape, float[][] keys, float[] query, int p, double[][] acc) {
        int d = shape.headDim();
        int g = shape.groupSize();
        double scale = 1 / Math.sqrt(d);
        for (int h = 0; h < shape.kvHeads(); h++) {
            for (int j = 0; j < g; j++) {
                int qOff = (h * g + j) * d;
                double[] logits = new double[p + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int i = 0; i <= p; i++) {
                    double dot = 0;
                    for (int e = 0; e < d; e++) {
                        dot += (double) query[qOff + e] * keys[i][h * d + e];
                    }
                    logits[i] = dot * scale;
                    max = Math.max(max, logits[i]);
                }
                double sum = 0;
                for (int i = 0; i <= p; i++) {
                    logits[i] = Math.exp(logits[i] - max);
                    sum += logits[i];
                }
                for (int i = 0; i <= p; i++) {
                    acc[h][i] += logits[i] / sum / g;
                }
            }
        }
    }

    /**
     * Three heavy hitters that every query attends keep their slots; the rest of the budget is the
     * sink and the recent window. Keys are orthonormal (one basis vector per token), so the logits are
     * exact. (Without the sink, token 0 would win a heavy slot on the mass of the first few queries,
     * which see almost nothing else: H2O's known bias towards the first tokens.)
     */
    @Test
    void heavyHittersAndTheRecentWindowSurvive() {
        int d = 256;
        ModelShape shape = new ModelShape(1, 2, 1, d);
        H2OPolicy.Config config = H2OPolicy.Config.defaults(Budget.tokens(12, 1, 8));
        int[] heavy = {5, 17, 40};
        try (KvCache cache = KvCache.builder(shape)
                .dtype(KvDType.F32)
                .policy(new H2OPolicy(config))
                .build()) {
            float[] out = new float[2 * d];
            for (int t = 0; t < 200; t++) {
                float[] key = new float[d];
                key[t] = 1;
                cache.append(0, key, 0, key, 0, 1);
                float[] q = new float[2 * d];
                for (int hh : heavy) {
                    if (hh <= t) {
                        q[hh] = (float) (5 * Math.sqrt(d)); // logit 5 for each heavy hitter, head 0
                        q[d + hh] = (float) (4 * Math.sqrt(d)); // logit 4, head 1
                    }
                }
                cache.attend(0, q, 0, 1, out, 0);
            }
            TreeSet<Integer> expected = Streams.range(192, 200);
            expected.add(0);
            for (int hh : heavy) {
                expected.add(hh);
            }
            assertEquals(expected, Streams.positions(cache, 0, 0));
        }
    }
}
