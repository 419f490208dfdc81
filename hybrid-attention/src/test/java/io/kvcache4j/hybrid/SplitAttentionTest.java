package io.kvcache4j.hybrid;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.eviction.H2OPolicy;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.NativeMemory;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * RetrievalAttention and HGCA: equal to full attention when nothing is dropped, close to it with a
 * small selection on data with a few dominant keys; exact tier bytes; close frees everything.
 */
class SplitAttentionTest {
    static final ModelShape SHAPE = new ModelShape(2, 8, 2, 32);

    @ParameterizedTest
    @ValueSource(strings = {"retrieval", "retrieval-flat-index", "hgca"})
    void equalsFullAttentionWhenNothingIsDropped(String kind) {
        long seed = TestSeeds.seed("split-full-" + kind);
        SplittableRandom r = TestSeeds.random(seed);
        long before = NativeMemory.liveBytes();
        HeadStoreFactory factory = kind.startsWith("retrieval")
                ? SplitFactory.retrieval(RetrievalConfig.defaults()
                        .withWindow(4, 24)
                        .withTopK(100_000)
                        .withSelector(
                                kind.equals("retrieval") ? FlatSelector.factory() : IndexSelector.factory("flat", "")))
                : SplitFactory.hgca(HgcaConfig.defaults().withWindow(4, 24).withSparsity(Float.POSITIVE_INFINITY, 1));
        SplitFactory split = (SplitFactory) factory;
        try (AttentionPool pool = AttentionPool.create(2);
                KvCache exact = KvCache.builder(SHAPE).dtype(KvDType.F16).build();
                KvCache hybrid = KvCache.builder(SHAPE)
                        .store(factory)
                        .attentionPool(pool)
                        .build()) {
            double worst = 0;
            int[] chunks = {37, 80, 1, 1, 1, 5, 1, 1};
            for (int chunk : chunks) {
                worst = Math.max(worst, step(r, exact, hybrid, chunk, 1f, null));
            }
            assertTrue(worst < 2e-6, "max abs difference " + worst + " seed=" + seed);
            long fastRows = 28; // 4 sinks + 24 recent per head
            long pageBytes = 2L * 32 * 2 * 16;
            assertEquals(
                    SHAPE.layers() * SHAPE.kvHeads() * ((fastRows + 15) / 16) * pageBytes,
                    split.fastTier().bytesHeld(),
                    "the fast tier holds exactly the sinks and recent windows, in whole pages");
            int tokens = hybrid.nextPosition(0);
            assertEquals(
                    SHAPE.layers() * SHAPE.kvHeads() * ((tokens - fastRows + 15) / 16) * pageBytes,
                    split.slowTier().bytesHeld(),
                    "the slow tier holds exactly the rest, in whole pages");
            assertEquals(
                    hybrid.bytesHeld(),
                    split.fastTier().bytesHeld() + split.slowTier().bytesHeld());
            System.out.printf(
                    "[%s] %d tokens: fast tier %d bytes, slow tier %d, exact f16 cache %d; max |diff| %.3g%n",
                    kind,
                    hybrid.nextPosition(0),
                    split.fastTier().bytesHeld(),
                    split.slowTier().bytesHeld(),
                    exact.bytesHeld(),
                    worst);
        }
        assertEquals(0, split.fastTier().bytesHeld());
        assertEquals(0, split.slowTier().bytesHeld());
        assertEquals(before, NativeMemory.liveBytes());
    }

    @ParameterizedTest
    @ValueSource(strings = {"retrieval", "retrieval-roar", "retrieval-hnsw", "hgca"})
    void closeToFullAttentionWithFewKeysWhenAFewKeysDominate(String kind) {
        long seed = TestSeeds.seed("split-sparse-" + kind);
        SplittableRandom r = TestSeeds.random(seed);
        HeadStoreFactory factory = kind.startsWith("retrieval")
                ? SplitFactory.retrieval(RetrievalConfig.defaults()
                        .withWindow(4, 16)
                        .withTopK(16)
                        .withSelector(
                                kind.equals("retrieval")
                                        ? FlatSelector.factory()
                                        : IndexSelector.factory(kind.substring("retrieval-".length()), "")))
                : SplitFactory.hgca(HgcaConfig.defaults().withWindow(4, 16).withSparsity(6f, 0.05));
        int prompt = 600;
        try (KvCache exact = KvCache.builder(SHAPE).dtype(KvDType.F16).build();
                KvCache hybrid = KvCache.builder(SHAPE).store(factory).build()) {
            // Keys small except a few planted ones aligned with the decode queries' direction.
            float[][] dir = new float[SHAPE.kvHeads()][SHAPE.headDim()];
            for (float[] d : dir) {
                double norm = 0;
                for (int i = 0; i < d.length; i++) {
                    d[i] = (float) (r.nextDouble() * 2 - 1);
                    norm += d[i] * (double) d[i];
                }
                // every seed gets the same dominance: |dir|² fixed at its expected value d/3
                double scale = Math.sqrt(d.length / 3.0 / norm);
                for (int i = 0; i < d.length; i++) {
                    d[i] = (float) (d[i] * scale);
                }
            }
            for (int l = 0; l < SHAPE.layers(); l++) {
                float[] k = TestSeeds.floats(r, prompt * SHAPE.kvRowFloats(), 0.3f);
                float[] v = TestSeeds.floats(r, prompt * SHAPE.kvRowFloats(), 1f);
                java.util.BitSet planted = new java.util.BitSet();
                for (int p = 0; p < 8; p++) {
                    int t;
                    do {
                        t = 50 + r.nextInt(500);
                    } while (planted.get(t));
                    planted.set(t);
                    for (int h = 0; h < SHAPE.kvHeads(); h++) {
                        for (int i = 0; i < SHAPE.headDim(); i++) {
                            k[t * SHAPE.kvRowFloats() + h * SHAPE.headDim() + i] = 2.5f * dir[h][i];
                        }
                    }
                }
                float[] q = TestSeeds.floats(r, prompt * SHAPE.queryRowFloats(), 0.3f);
                exact.append(l, k, 0, v, 0, prompt);
                hybrid.append(l, k, 0, v, 0, prompt);
                exact.attend(l, q, 0, prompt, new float[q.length], 0);
                hybrid.attend(l, q, 0, prompt, new float[q.length], 0);
            }
            double worst = 0;
            double relSum = 0;
            int n = 0;
            for (int s = 0; s < 10; s++) {
                for (int l = 0; l < SHAPE.layers(); l++) {
                    float[] k = TestSeeds.floats(r, SHAPE.kvRowFloats(), 0.3f);
                    float[] v = TestSeeds.floats(r, SHAPE.kvRowFloats(), 1f);
                    float[] q = new float[SHAPE.queryRowFloats()];
                    for (int qh = 0; qh < SHAPE.queryHeads(); qh++) {
                        int h = qh / SHAPE.groupSize();
                        for (int i = 0; i < SHAPE.headDim(); i++) {
                            q[qh * SHAPE.headDim() + i] = 2.5f * dir[h][i] + (float) (r.nextDouble() - 0.5) * 0.2f;
                        }
                    }
                    exact.append(l, k, 0, v, 0, 1);
                    hybrid.append(l, k, 0, v, 0, 1);
                    float[] a = new float[q.length];
                    float[] b = new float[q.length];
                    exact.attend(l, q, 0, 1, a, 0);
                    hybrid.attend(l, q, 0, 1, b, 0);
                    double num = 0;
                    double den = 0;
                    for (int i = 0; i < a.length; i++) {
                        num += (a[i] - b[i]) * (double) (a[i] - b[i]);
                        den += a[i] * (double) a[i];
                        worst = Math.max(worst, Math.abs(a[i] - b[i]));
                    }
                    relSum += Math.sqrt(num / den);
                    n++;
                }
            }
            double rel = relSum / n;
            System.out.printf(
                    "[%s] sparse over %d slow-tier keys per head: mean relative L2 error %.3g, max |diff| %.3g%n",
                    kind, prompt + 10 - 20, rel, worst);
            assertTrue(rel < 0.01, "mean relative error " + rel + " seed=" + seed);
        }
    }

    @Test
    void scorePoliciesAreRefusedAndConfigurationsNameValueAndRange() {
        var e = assertThrows(
                IllegalArgumentException.class,
                () -> KvCache.builder(SHAPE)
                        .store(SplitFactory.retrieval(RetrievalConfig.defaults()))
                        .policy(new H2OPolicy(H2OPolicy.Config.defaults(Budget.tokens(64))))
                        .build());
        assertEquals("policy h2o needs attention scores, but storage retrieval cannot report them", e.getMessage());
        assertEquals(
                "topK must be in [0, 2147483647], was -1",
                assertThrows(
                                IllegalArgumentException.class,
                                () -> RetrievalConfig.defaults().withTopK(-1))
                        .getMessage());
        assertEquals(
                "recentTokens must be in [0, 2147483647], was -2",
                assertThrows(
                                IllegalArgumentException.class,
                                () -> HgcaConfig.defaults().withWindow(4, -2))
                        .getMessage());
        assertEquals(
                "maxFraction must be in (0, 1], was 1.5",
                assertThrows(
                                IllegalArgumentException.class,
                                () -> HgcaConfig.defaults().withSparsity(1f, 1.5))
                        .getMessage());
        assertEquals(
                "threshold must be in (0, Infinity], was 0.0",
                assertThrows(
                                IllegalArgumentException.class,
                                () -> HgcaConfig.defaults().withSparsity(0f, 0.5))
                        .getMessage());
        RetrievalConfig fromBudget = RetrievalConfig.forBudget(Budget.tokens(256), 100);
        assertEquals(4, fromBudget.sinkTokens());
        assertEquals(252, fromBudget.recentTokens());
        assertEquals(256, fromBudget.fastTokens());
        assertEquals(
                256, HgcaConfig.forBudget(Budget.fraction(0.25).resolve(1024)).fastTokens());
        assertThrows(IllegalArgumentException.class, () -> HgcaConfig.forBudget(Budget.fraction(0.25)));
    }

    @Test
    void flatSelectorBreaksTiesTowardsLowerRows() {
        int d = 8;
        int rows = 300;
        // three score levels repeated: rows r % 3 == 2 score highest, then r % 3 == 1, then 0
        KeyRows kr = new KeyRows() {
            @Override
            public int headDim() {
                return d;
            }

            @Override
            public int rows() {
                return rows;
            }

            @Override
            public void readKey(int row, float[] dst, int offset) {
                java.util.Arrays.fill(dst, offset, offset + d, row % 3);
            }
        };
        float[] q = new float[d];
        java.util.Arrays.fill(q, 1f);
        FlatSelector sel = new FlatSelector();
        int[] out = new int[rows];
        for (int k : new int[] {1, 7, 100, 150, 299}) {
            int n = sel.select(kr, rows, q, 1, k, out);
            assertEquals(k, n);
            // the 100 rows of the top level first, then the lowest rows of the next level
            int[] want = java.util.stream.IntStream.range(0, rows)
                    .boxed()
                    .sorted((a, b) -> a % 3 != b % 3 ? Integer.compare(b % 3, a % 3) : Integer.compare(a, b))
                    .limit(k)
                    .mapToInt(Integer::intValue)
                    .sorted()
                    .toArray();
            assertArrayEquals(want, java.util.Arrays.copyOf(out, n), "k " + k);
        }
    }

    @Test
    void flatSelectorKeepsTheTopKByMaxInnerProduct() {
        long seed = TestSeeds.seed("flat-selector");
        SplittableRandom r = TestSeeds.random(seed);
        int d = 16;
        int rows = 200;
        float[][] keys = new float[rows][];
        for (int i = 0; i < rows; i++) {
            keys[i] = TestSeeds.floats(r, d, 1f);
        }
        KeyRows kr = new KeyRows() {
            @Override
            public int headDim() {
                return d;
            }

            @Override
            public int rows() {
                return rows;
            }

            @Override
            public void readKey(int row, float[] dst, int offset) {
                System.arraycopy(keys[row], 0, dst, offset, d);
            }
        };
        float[] q = TestSeeds.floats(r, 2 * d, 1f);
        FlatSelector sel = new FlatSelector();
        int[] out = new int[rows];
        int n = sel.select(kr, rows, q, 2, 10, out);
        assertEquals(10, n);
        double[] score = new double[rows];
        for (int i = 0; i < rows; i++) {
            double best = Double.NEGATIVE_INFINITY;
            for (int h = 0; h < 2; h++) {
                double s = 0;
                for (int j = 0; j < d; j++) {
                    s += (double) q[h * d + j] * keys[i][j];
                }
                best = Math.max(best, s);
            }
            score[i] = best;
        }
        double[] sorted = score.clone();
        java.util.Arrays.sort(sorted);
        double tenth = sorted[rows - 10];
        for (int i = 0; i < n; i++) {
            assertTrue(i == 0 || out[i] > out[i - 1], "increasing");
            assertTrue(score[out[i]] >= tenth - 1e-5, "row " + out[i] + " is among the top 10, seed=" + seed);
        }
        assertEquals(rows, sel.keysScanned());
        assertEquals(rows, sel.select(kr, rows, q, 2, rows, out), "k >= rows keeps every row");
    }

    /** Appends and attends {@code tokens} tokens on every layer; returns the max abs output difference. */
    static double step(SplittableRandom r, KvCache exact, KvCache hybrid, int tokens, float keyScale, float[] unused) {
        double worst = 0;
        for (int l = 0; l < SHAPE.layers(); l++) {
            float[] k = TestSeeds.floats(r, tokens * SHAPE.kvRowFloats(), keyScale);
            float[] v = TestSeeds.floats(r, tokens * SHAPE.kvRowFloats(), 1f);
            float[] q = TestSeeds.floats(r, tokens * SHAPE.queryRowFloats(), 2f);
            exact.append(l, k, 0, v, 0, tokens);
            hybrid.append(l, k, 0, v, 0, tokens);
            float[] a = new float[q.length];
            float[] b = new float[q.length];
            exact.attend(l, q, 0, tokens, a, 0);
            hybrid.attend(l, q, 0, tokens, b, 0);
            for (int i = 0; i < a.length; i++) {
                worst = Math.max(worst, Math.abs(a[i] - b[i]));
            }
        }
        return worst;
    }
}
