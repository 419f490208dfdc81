package io.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.cache.CpuLayerAttention;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Attention spread over threads, and long heads cut into chunks merged by log-sum-exp: outputs,
 * log-sum-exps and per-key scores are bit-identical with no pool and with pools of 1, 2 and 4
 * threads, and the chunked result matches float64 attention.
 */
class ParallelAttentionTest {
    static final ModelShape SHAPE = new ModelShape(2, 8, 2, 48);

    /** Outputs then log-sum-exps of a prefill chunk and a few decode steps over a long context. */
    private static float[] run(long seed, AttentionPool pool, int context, EvictionPolicy policy) {
        SplittableRandom r = TestSeeds.random(seed);
        KvCacheBuilder b = KvCache.builder(SHAPE).store(smallChunks(97));
        if (pool != null) {
            b.attentionPool(pool);
        }
        if (policy != null) {
            b.policy(policy);
        }
        int decode = 3;
        int prefillQueries = 5;
        float[] result = new float[SHAPE.layers() * (prefillQueries + decode) * (SHAPE.queryRowFloats() + 8)];
        int at = 0;
        try (KvCache cache = b.build()) {
            for (int l = 0; l < SHAPE.layers(); l++) {
                float[] k = TestSeeds.floats(r, context * SHAPE.kvRowFloats(), 1);
                float[] v = TestSeeds.floats(r, context * SHAPE.kvRowFloats(), 1);
                cache.append(l, k, 0, v, 0, context);
                // Attend all but the last few prompt tokens, then those few as one batch (long heads).
                float[] q = TestSeeds.floats(r, context * SHAPE.queryRowFloats(), 1);
                float[] out = new float[context * SHAPE.queryRowFloats()];
                float[] lse = new float[context * SHAPE.queryHeads()];
                cache.attendPartial(l, q, 0, context - prefillQueries, out, 0, lse, 0);
                cache.attendPartial(
                        l,
                        q,
                        (context - prefillQueries) * SHAPE.queryRowFloats(),
                        prefillQueries,
                        result,
                        at,
                        result,
                        at + prefillQueries * SHAPE.queryRowFloats());
                at += prefillQueries * (SHAPE.queryRowFloats() + SHAPE.queryHeads());
            }
            for (int t = 0; t < decode; t++) {
                for (int l = 0; l < SHAPE.layers(); l++) {
                    float[] k = TestSeeds.floats(r, SHAPE.kvRowFloats(), 1);
                    float[] q = TestSeeds.floats(r, SHAPE.queryRowFloats(), 1);
                    cache.append(l, k, 0, k, 0, 1);
                    cache.attendPartial(l, q, 0, 1, result, at, result, at + SHAPE.queryRowFloats());
                    at += SHAPE.queryRowFloats() + SHAPE.queryHeads();
                }
            }
        }
        return java.util.Arrays.copyOf(result, at);
    }

    /** Exact f32 storage whose CPU source cuts heads into chunks of {@code chunk} slots. */
    static HeadStoreFactory smallChunks(int chunk) {
        HeadStoreFactory exact = HeadStoreFactory.exact(KvDType.F32, 16);
        return new HeadStoreFactory() {
            @Override
            public HeadStore create(Spec spec) {
                return exact.create(spec);
            }

            @Override
            public LayerAttention layerAttention(LayerContext context) {
                return new CpuLayerAttention(context, AttentionKernels.get(), chunk);
            }
        };
    }

    @Test
    void longHeadsGiveTheSameBitsOnAnyNumberOfThreads() {
        long seed = TestSeeds.seed("parallel-attention");
        int context = 2 * 97 * 4 + 33;
        float[] serial = run(seed, null, context, null);
        for (int threads : new int[] {1, 2, 4}) {
            try (AttentionPool pool = AttentionPool.create(threads)) {
                assertArrayEquals(serial, run(seed, pool, context, null), threads + " threads, seed=" + seed);
            }
        }
    }

    /** Records every score it is given, summed, so runs can be compared. */
    static final class ScoreSum implements EvictionPolicy {
        double total;
        final AtomicInteger calls = new AtomicInteger();

        @Override
        public String name() {
            return "score-sum";
        }

        @Override
        public EvictionTracker bind(CacheAccess cache) {
            return new EvictionTracker() {
                @Override
                public ScoreAggregation scoreAggregation() {
                    return ScoreAggregation.MEAN;
                }

                @Override
                public void onScores(int layer, int kvHead, int queryPosition, float[] mass, int slots) {
                    calls.incrementAndGet();
                    for (int i = 0; i < slots; i++) {
                        total = total * 0.999 + mass[i] * (1 + kvHead + 31 * (queryPosition % 7));
                    }
                }
            };
        }
    }

    @Test
    void scoresAndOutputsAreTheSameWithAPool() {
        long seed = TestSeeds.seed("parallel-scores");
        ScoreSum serialPolicy = new ScoreSum();
        float[] serial = run(seed, null, 1500, serialPolicy);
        ScoreSum pooledPolicy = new ScoreSum();
        float[] pooled;
        try (AttentionPool pool = AttentionPool.create(2)) {
            pooled = run(seed, pool, 1500, pooledPolicy);
        }
        assertArrayEquals(serial, pooled, "seed=" + seed);
        assertEquals(serialPolicy.calls.get(), pooledPolicy.calls.get());
        assertEquals(serialPolicy.total, pooledPolicy.total, 0.0, "scores in the same order, seed=" + seed);
        assertTrue(serialPolicy.calls.get() > 1500, "scores were reported");
    }

    @Test
    void chunkedAttentionMatchesFloat64() {
        long seed = TestSeeds.seed("chunked-reference");
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(1, 2, 1, 32);
        int context = 97 * 30 + 77;
        float[] k = TestSeeds.floats(r, context * 32, 1);
        float[] v = TestSeeds.floats(r, context * 32, 1);
        float[] q = TestSeeds.floats(r, 64, 3);
        float[] out = new float[64];
        float[] lse = new float[2];
        try (AttentionPool pool = AttentionPool.create(2);
                KvCache cache = KvCache.builder(shape)
                        .store(smallChunks(97))
                        .attentionPool(pool)
                        .build()) {
            cache.append(0, k, 0, v, 0, context);
            float[] prompt = new float[(context - 1) * 64];
            cache.attend(0, prompt, 0, context - 1, new float[prompt.length], 0);
            cache.attendPartial(0, q, 0, 1, out, 0, lse, 0);
        }
        int[] all = new int[context];
        for (int i = 0; i < context; i++) {
            all[i] = i;
        }
        double[][] want = HeadStoreSeamTest.reference(q, k, v, all, context, 2, 32, (float) (1 / Math.sqrt(32)));
        for (int h = 0; h < 2; h++) {
            assertEquals(want[h][32], lse[h], 2e-5 * Math.abs(want[h][32]), "lse head " + h + " seed=" + seed);
            for (int i = 0; i < 32; i++) {
                assertEquals(want[h][i], out[h * 32 + i], 2e-5, "head " + h + " element " + i + " seed=" + seed);
            }
        }
    }

    @Test
    void aPoolRunsEveryItemOnceAndRethrows() {
        try (AttentionPool pool = AttentionPool.create(3)) {
            for (int round = 0; round < 2000; round++) {
                int n = 1 + round % 37;
                AtomicInteger[] hits = new AtomicInteger[n];
                for (int i = 0; i < n; i++) {
                    hits[i] = new AtomicInteger();
                }
                pool.run((item, worker) -> hits[item].incrementAndGet(), n);
                for (int i = 0; i < n; i++) {
                    assertEquals(1, hits[i].get(), "item " + i + " of " + n);
                }
            }
            var e = assertThrows(
                    IllegalArgumentException.class,
                    () -> pool.run(
                            (item, worker) -> {
                                if (item == 5) {
                                    throw new IllegalArgumentException("item 5 failed");
                                }
                            },
                            10));
            assertEquals("item 5 failed", e.getMessage());
        }
        var bad = assertThrows(IllegalArgumentException.class, () -> AttentionPool.create(0));
        assertEquals("threads must be in [1, 4096], was 0", bad.getMessage());
        AttentionPool closed = AttentionPool.create(2);
        closed.close();
        var after = assertThrows(IllegalStateException.class, () -> closed.run((i, w) -> {}, 3));
        assertEquals("attention pool is closed", after.getMessage());
    }
}
