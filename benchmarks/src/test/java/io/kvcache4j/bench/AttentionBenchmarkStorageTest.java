package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.quantization.OneBitHeadStore;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.PagedHeadStore;
import org.junit.jupiter.api.Test;

/** The benchmarks' {@code dtype} names build the stores they say, and an unknown one is refused. */
class AttentionBenchmarkStorageTest {
    private static HeadStore create(String dtype) {
        ModelShape shape = new ModelShape(1, AttentionBenchmark.GROUP, 1, AttentionBenchmark.HEAD_DIM);
        return AttentionBenchmark.storage(dtype, "scalar", AttentionKernels.scalar())
                .create(new HeadStoreFactory.Spec(shape, 0, 0));
    }

    @Test
    void oneBitGroupSizeFollowsTheName() {
        try (HeadStore g64 = create("1bit");
                HeadStore g128 = create("1bit-g128")) {
            assertEquals(64, ((OneBitHeadStore) g64).config().groupTokens());
            assertEquals(128, ((OneBitHeadStore) g128).config().groupTokens());
            assertEquals(64, g64.granularity());
            assertEquals(128, g128.granularity());
        }
    }

    @Test
    void unknownDtypeIsRefusedNamingTheChoices() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> create("1bit-g96"));
        assertEquals("dtype must be f32, f16, bf16, int8, int4, int2, 1bit or 1bit-g128, was 1bit-g96", e.getMessage());
    }

    @Test
    void pageTokensSetTheExactStoresPagesAndAreRefusedElsewhere() {
        ModelShape shape = new ModelShape(1, AttentionBenchmark.GROUP, 1, AttentionBenchmark.HEAD_DIM);
        try (HeadStore p32 = AttentionBenchmark.storage("f16", "scalar", AttentionKernels.scalar(), 32)
                .create(new HeadStoreFactory.Spec(shape, 0, 0))) {
            assertEquals(32, ((PagedHeadStore) p32).pageTokens());
        }
        // 0: the pages a full cache gets, 32 tokens for exact types; the quantizing stores keep 16
        try (HeadStore p0 = AttentionBenchmark.storage("bf16", "scalar", AttentionKernels.scalar(), 0)
                .create(new HeadStoreFactory.Spec(shape, 0, 0))) {
            assertEquals(io.kvcache4j.api.KvCacheBuilder.FULL_CACHE_PAGE_TOKENS, ((PagedHeadStore) p0).pageTokens());
        }
        // (a quantizing store refuses any page size but 16, so 0 must resolve to 16 for it)
        AttentionBenchmark.storage("int4", "scalar", AttentionKernels.scalar(), 0)
                .create(new HeadStoreFactory.Spec(shape, 0, 0))
                .close();
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> AttentionBenchmark.storage("int4", "scalar", AttentionKernels.scalar(), 32));
        assertEquals("pageTokens applies to f32, f16 and bf16 only; int4 takes 16, was 32", e.getMessage());
    }
}
