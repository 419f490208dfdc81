package io.kvcache4j.quantization;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.cache.CpuLayerAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStores;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * kv-api's CPU layer source attends distinct chunks of one long store on several threads at once:
 * every codec gives the same bits on a pool of four threads as on the calling thread alone.
 */
class ChunkedAttentionTest {
    static final int HEAD_DIM = 64;
    static final int GROUP = 4;

    @ParameterizedTest
    @ValueSource(strings = {"int8", "int4", "int2", "1bit", "1bit-quantile", "int4+rht"})
    void chunksOnSeveralThreadsGiveTheBitsOfOneThread(String storage) {
        long seed = TestSeeds.seed("chunked-" + storage);
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(1, GROUP, 1, HEAD_DIM);
        int tokens = 6_000;
        float[] k = new float[tokens * HEAD_DIM];
        float[] v = new float[tokens * HEAD_DIM];
        for (int i = 0; i < k.length; i++) {
            k[i] = (float) r.nextGaussian();
            v[i] = (float) r.nextGaussian();
        }
        float[] q = new float[GROUP * HEAD_DIM];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) r.nextGaussian();
        }
        HeadStoreFactory factory = HeadStores.factory(storage, 16);
        try (HeadStore store = factory.create(new HeadStoreFactory.Spec(shape, 0, 0));
                AttentionPool pool = AttentionPool.create(4)) {
            store.append(k, 0, v, 0, HEAD_DIM, tokens);
            float[] alone = attend(shape, store, null, q, tokens);
            for (int round = 0; round < 20; round++) {
                float[] parallel = attend(shape, store, pool, q, tokens);
                assertArrayEquals(alone, parallel, storage + " round " + round + ", seed=" + seed);
            }
        }
    }

    private static float[] attend(ModelShape shape, HeadStore store, AttentionPool pool, float[] q, int tokens) {
        // Chunks of 256 slots: 24 chunks for 6,000 tokens, spread over the pool's threads.
        CpuLayerAttention source = new CpuLayerAttention(
                new LayerContext(shape, 0, new HeadStore[] {store}, pool), AttentionKernels.get(), 256);
        float[] out = new float[GROUP * HEAD_DIM];
        LayerBatch batch = new LayerBatch(shape, 1)
                .set(0, 1, q, 0, (float) (1 / Math.sqrt(HEAD_DIM)), out, 0, null, 0, null, null);
        batch.setVisible(0, 0, tokens);
        source.attend(batch);
        return out;
    }
}
