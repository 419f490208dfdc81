package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.cache.CpuLayerAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.PagedHeadStore;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Prefill tiles (several tokens' query heads attending the keys they share in one pass) give every
 * output and log-sum-exp the bits of the untiled passes: causal prompts attended in batches of
 * various sizes (tile remainders, chunks cut mid-page, a tile straddling a chunk boundary), with
 * and without a pool, against the same cache built without tiles.
 */
class PrefillTileTest {

    @ParameterizedTest(name = "group {0}, headDim {1}, chunk {2}")
    @CsvSource({
        "2, 32, 16384",
        "2, 32, 97",
        "4, 64, 16384",
        "4, 64, 200",
        "4, 128, 97",
        "1, 64, 97",
        "1, 128, 16384",
        "8, 128, 113"
    })
    void tilesGiveTheBitsOfSingleTokenPasses(int group, int headDim, int chunk) {
        long seed = TestSeeds.seed("prefill-tiles-" + group + "-" + headDim + "-" + chunk);
        ModelShape shape = new ModelShape(2, 2 * group, 2, headDim);
        AttentionKernel kernel = AttentionKernels.get();
        int tile;
        try (PagedHeadStore probe = new PagedHeadStore(KvDType.F16, headDim, 16, kernel)) {
            tile = probe.prefillTileTokens(group);
        }
        System.out.println("[tiles] kernel " + kernel.name() + ": " + tile + " tokens per tile at group " + group
                + ", headDim " + headDim);
        if (kernel.name().equals("panama") && PanamaLanes.lanes() == 16) {
            assertEquals(group == 1 ? 8 : group == 8 ? 2 : 4, tile, "tile size of the 16-lane kernel");
        }
        int[] batches = {1, 9, 8, 250, 3, 417, 2, 5};
        float[] untiled = run(shape, seed, chunk, false, null, batches);
        float[] tiled = run(shape, seed, chunk, true, null, batches);
        assertBitwise(untiled, tiled, "tiles, seed=" + seed);
        try (AttentionPool pool = AttentionPool.create(2)) {
            assertBitwise(untiled, run(shape, seed, chunk, true, pool, batches), "tiles on a pool, seed=" + seed);
        }
    }

    @Test
    void tileStateArgumentsOutOfRangeAreRefused() {
        AttentionKernel kernel = AttentionKernels.get();
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> new GroupAttention(6, 32, kernel, 4));
        assertEquals("unit must divide group 6, was 4", e.getMessage());
        GroupAttention tile = new GroupAttention(8, 32, kernel, 2);
        assertEquals(2, tile.unit());
        e = assertThrows(IllegalArgumentException.class, () -> tile.copyTokenTo(0, new GroupAttention(4, 32, kernel)));
        assertEquals("destination has 4 rows of 32; needs 2 of 32", e.getMessage());
        IndexOutOfBoundsException oob = assertThrows(
                IndexOutOfBoundsException.class, () -> tile.copyTokenTo(4, new GroupAttention(2, 32, kernel)));
        assertEquals("token 4 out of range [0, 4)", oob.getMessage());
        try (PagedHeadStore store = new PagedHeadStore(KvDType.F16, 32, 64, kernel)) {
            e = assertThrows(IllegalArgumentException.class, () -> store.blockBoundary(10, 5));
            assertEquals("range [10, 5) is not valid", e.getMessage());
            // within the first page blocks start at `from`; past it, at multiples of 16
            assertEquals(10 + 48, store.blockBoundary(10, 60));
            assertEquals(96, store.blockBoundary(10, 100));
            assertEquals(0, store.blockBoundary(0, 15));
        }
    }

    @Test
    void beginTokensReadsEachTokensQueriesAtItsStride() {
        AttentionKernel kernel = AttentionKernels.get();
        GroupAttention tile = new GroupAttention(4, 2, kernel, 2);
        float[] queries = {1, 2, 3, 4, 99, 99, 5, 6, 7, 8};
        tile.beginTokens(queries, 0, 6, 0.5f);
        assertArrayEquals(new float[] {0.5f, 1, 1.5f, 2, 2.5f, 3, 3.5f, 4}, tile.queries());
        GroupAttention one = new GroupAttention(2, 2, kernel);
        tile.copyTokenTo(1, one);
        assertArrayEquals(new float[] {2.5f, 3, 3.5f, 4}, one.queries());
    }

    private static void assertBitwise(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) {
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i])) {
                throw new AssertionError(what + ": element " + i + " is " + got[i] + ", untiled " + want[i]);
            }
        }
        assertTrue(want.length > 0, what);
    }

    /** Outputs and log-sum-exps of causal batches of {@code batches[i]} tokens appended then attended. */
    private static float[] run(
            ModelShape shape, long seed, int chunk, boolean tiles, AttentionPool pool, int[] batches) {
        SplittableRandom r = TestSeeds.random(seed);
        KvCacheBuilder b = KvCache.builder(shape).store(f16(chunk, tiles));
        if (pool != null) {
            b.attentionPool(pool);
        }
        int total = 0;
        for (int n : batches) {
            total += n;
        }
        int rowOut = shape.queryRowFloats() + shape.queryHeads();
        float[] result = new float[shape.layers() * total * rowOut];
        int at = 0;
        try (KvCache cache = b.build()) {
            for (int n : batches) {
                for (int l = 0; l < shape.layers(); l++) {
                    float[] k = TestSeeds.floats(r, n * shape.kvRowFloats(), 1);
                    float[] v = TestSeeds.floats(r, n * shape.kvRowFloats(), 1);
                    float[] q = TestSeeds.floats(r, n * shape.queryRowFloats(), 2);
                    cache.append(l, k, 0, v, 0, n);
                    cache.attendPartial(l, q, 0, n, result, at, result, at + n * shape.queryRowFloats());
                    at += n * rowOut;
                }
            }
        }
        return result;
    }

    private static HeadStoreFactory f16(int chunk, boolean tiles) {
        HeadStoreFactory exact = HeadStoreFactory.exact(KvDType.F16, 16);
        return new HeadStoreFactory() {
            @Override
            public HeadStore create(HeadStoreFactory.Spec spec) {
                return exact.create(spec);
            }

            @Override
            public LayerAttention layerAttention(LayerContext context) {
                return new CpuLayerAttention(context, AttentionKernels.get(), chunk, tiles);
            }
        };
    }
}
