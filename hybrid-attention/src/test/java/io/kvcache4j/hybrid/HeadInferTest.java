package io.kvcache4j.hybrid;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.FullPolicy;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.eviction.H2OPolicy;
import io.kvcache4j.eviction.SnapKvPolicy;
import io.kvcache4j.eviction.StreamingLlmPolicy;
import io.kvcache4j.store.HeadStores;
import io.kvcache4j.store.NativeMemory;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** HeadInfer: bit-identical to the exact f16 cache, with and without eviction; tier bytes; close. */
class HeadInferTest {
    static final ModelShape SHAPE = new ModelShape(3, 8, 4, 32);

    @ParameterizedTest(name = "policy {0}, resident {1}, pool {2}")
    @CsvSource({"full,0,false", "full,1,true", "full,4,false", "h2o,2,false", "snapkv,0,true", "streaming,1,false"})
    void outputsAreBitIdenticalToTheExactF16Cache(String policyName, int resident, boolean pooled) {
        long seed = TestSeeds.seed("headinfer-" + policyName + "-" + resident + "-" + pooled);
        SplittableRandom r = TestSeeds.random(seed);
        Supplier<EvictionPolicy> policy = switch (policyName) {
            case "h2o" -> () -> new H2OPolicy(H2OPolicy.Config.defaults(Budget.tokens(64)));
            case "snapkv" -> () -> new SnapKvPolicy(SnapKvPolicy.Config.defaults(Budget.tokens(64)));
            case "streaming" -> () -> new StreamingLlmPolicy(StreamingLlmPolicy.Config.defaults(Budget.tokens(64)));
            default -> () -> FullPolicy.INSTANCE;
        };
        long before = NativeMemory.liveBytes();
        FastTier fast = FastTier.unbounded();
        SlowTier slow = new SlowTier();
        HeadInferFactory factory =
                new HeadInferFactory(new HeadInferConfig(resident, 0, 16), fast, slow, AttentionKernels.get());
        try (AttentionPool pool = AttentionPool.create(2)) {
            KvCacheBuilder exactBuilder =
                    KvCache.builder(SHAPE).dtype(KvDType.F16).pageTokens(16);
            KvCacheBuilder hybridBuilder = KvCache.builder(SHAPE).store(factory);
            exactBuilder.policy(policy.get());
            hybridBuilder.policy(policy.get());
            if (pooled) {
                exactBuilder.attentionPool(pool);
                hybridBuilder.attentionPool(pool);
            }
            try (KvCache exact = exactBuilder.build();
                    KvCache hybrid = hybridBuilder.build()) {
                assertEquals("headinfer", hybrid.storage());
                int prompt = 150;
                int[] chunks = {100, 50};
                for (int chunk : chunks) {
                    step(r, exact, hybrid, chunk, seed);
                }
                exact.endPrefill();
                hybrid.endPrefill();
                for (int s = 0; s < 40; s++) {
                    step(r, exact, hybrid, 1, seed);
                }
                for (int l = 0; l < SHAPE.layers(); l++) {
                    for (int h = 0; h < SHAPE.kvHeads(); h++) {
                        assertEquals(exact.retainedTokens(l, h), hybrid.retainedTokens(l, h));
                    }
                }
                long pages = hybrid.bytesHeld();
                assertEquals(pages, fast.bytesHeld() + slow.bytesHeld() - stagingBytes(fast, slow, pages));
                System.out.printf(
                        "[headinfer] policy %s resident %d/%d: fast tier %d bytes (pages and staging), slow tier %d,"
                                + " whole cache %d (exact f16 cache %d): fast share %.3f%n",
                        policyName,
                        resident,
                        SHAPE.kvHeads(),
                        fast.bytesHeld(),
                        slow.bytesHeld(),
                        pages,
                        exact.bytesHeld(),
                        (double) fast.bytesHeld() / pages);
                assertTrue(prompt > 0);
            }
        }
        assertEquals(0, fast.bytesHeld(), "closing the cache empties the fast tier, staging included");
        assertEquals(0, slow.bytesHeld(), "closing the cache empties the slow tier");
        assertEquals(before, NativeMemory.liveBytes(), "no off-heap byte leaks");
    }

    /**
     * HeadInfer's claim, on a Llama-3-8B shape (32 layers, 32 query heads, 8 KV heads, d 128) with every
     * head offloaded: the fast tier never holds more than two layers' staged heads (the layer attending
     * and the one prefetched), 2/32 of the cache.
     */
    @org.junit.jupiter.api.Test
    void fastTierPeakIsTwoLayersOfTheCache() {
        ModelShape llama8b = new ModelShape(32, 32, 8, 128);
        long seed = TestSeeds.seed("headinfer-peak");
        SplittableRandom r = TestSeeds.random(seed);
        FastTier fast = FastTier.unbounded();
        SlowTier slow = new SlowTier();
        HeadInferFactory factory =
                new HeadInferFactory(new HeadInferConfig(0, 0, 16), fast, slow, AttentionKernels.get());
        int prompt = 256;
        try (KvCache cache = KvCache.builder(llama8b).store(factory).build()) {
            float[] k = TestSeeds.floats(r, prompt * llama8b.kvRowFloats(), 1f);
            float[] v = TestSeeds.floats(r, prompt * llama8b.kvRowFloats(), 1f);
            float[] pq = TestSeeds.floats(r, prompt * llama8b.queryRowFloats(), 1f);
            float[] pout = new float[pq.length];
            for (int l = 0; l < llama8b.layers(); l++) {
                cache.append(l, k, 0, v, 0, prompt);
                cache.attend(l, pq, 0, prompt, pout, 0);
            }
            cache.endPrefill();
            float[] q = TestSeeds.floats(r, llama8b.queryRowFloats(), 1f);
            float[] out = new float[llama8b.queryRowFloats()];
            for (int s = 0; s < 3; s++) {
                for (int l = 0; l < llama8b.layers(); l++) {
                    cache.append(l, k, 0, v, 0, 1);
                    cache.attend(l, q, 0, 1, out, 0);
                }
            }
            long whole = cache.bytesHeld();
            long perLayer = whole / llama8b.layers();
            System.out.printf(
                    "[headinfer] Llama-3-8B shape, %d tokens, every head offloaded: fast tier peak %d bytes of a %d-byte"
                            + " cache = %.4f (two layers: %.4f); slow tier %d%n",
                    prompt + 3,
                    fast.peakBytes(),
                    whole,
                    (double) fast.peakBytes() / whole,
                    2.0 / llama8b.layers(),
                    slow.bytesHeld());
            assertTrue(
                    fast.peakBytes() <= 2 * perLayer + 2L * llama8b.kvHeads() * fast.blockBytes(1),
                    "fast tier peak " + fast.peakBytes() + " > two layers " + 2 * perLayer);
            assertTrue(fast.peakBytes() > 0, "the offloaded heads were staged");
        }
        assertEquals(0, fast.bytesHeld());
    }

    /** The transfer engine's staging: what the fast and slow tiers hold beyond the cache's pages. */
    private static long stagingBytes(FastTier fast, SlowTier slow, long pages) {
        return fast.bytesHeld() + slow.bytesHeld() - pages;
    }

    private static void step(SplittableRandom r, KvCache exact, KvCache hybrid, int tokens, long seed) {
        for (int l = 0; l < SHAPE.layers(); l++) {
            float[] k = TestSeeds.floats(r, tokens * SHAPE.kvRowFloats(), 2f);
            float[] v = TestSeeds.floats(r, tokens * SHAPE.kvRowFloats(), 1f);
            float[] q = TestSeeds.floats(r, tokens * SHAPE.queryRowFloats(), 2f);
            exact.append(l, k, 0, v, 0, tokens);
            hybrid.append(l, k, 0, v, 0, tokens);
            float[] a = new float[q.length];
            float[] b = new float[q.length];
            float[] la = new float[tokens * SHAPE.queryHeads()];
            float[] lb = new float[tokens * SHAPE.queryHeads()];
            exact.attendPartial(l, q, 0, tokens, a, 0, la, 0);
            hybrid.attendPartial(l, q, 0, tokens, b, 0, lb, 0);
            assertArrayEquals(a, b, "outputs of layer " + l + " bit for bit, seed=" + seed);
            assertArrayEquals(la, lb, "lse of layer " + l + " bit for bit, seed=" + seed);
        }
    }

    @Test
    void theSharedFastTierBoundsResidentPagesWithAClearMessage() {
        FastTier fast = new FastTier(4096);
        HeadInferFactory factory =
                new HeadInferFactory(new HeadInferConfig(4, 0, 16), fast, new SlowTier(), AttentionKernels.get());
        ModelShape shape = new ModelShape(1, 4, 4, 32);
        try (KvCache cache = KvCache.builder(shape).store(factory).build()) {
            float[] row = new float[shape.kvRowFloats()];
            // four pages of 2048 bytes: 8192 > 4096
            var e = assertThrows(TierFullException.class, () -> cache.append(0, row, 0, row, 0, 1));
            assertEquals(
                    "fast tier is full: a block of 2048 bytes does not fit, 4096 of its 4096 bytes are held (0 free)",
                    e.getMessage());
        }
        assertEquals(0, fast.bytesHeld());
    }

    @Test
    void badConfigurationsNameTheValueAndTheRange() {
        var e = assertThrows(IllegalArgumentException.class, () -> new HeadInferConfig(-1, 0, 16));
        assertEquals("residentHeads must be in [0, kvHeads], was -1", e.getMessage());
        var pages = assertThrows(IllegalArgumentException.class, () -> new HeadInferConfig(0, 0, 10));
        assertEquals("pageTokens must be a multiple of 16 in [16, 65536], was 10", pages.getMessage());
        HeadInferFactory tooMany = new HeadInferFactory(new HeadInferConfig(5, 0, 16));
        var heads = assertThrows(
                IllegalArgumentException.class,
                () -> KvCache.builder(SHAPE).store(tooMany).build());
        assertEquals("residentHeads must be in [0, 4] (the model's KV heads), was 5", heads.getMessage());
        HeadInferFactory staging = new HeadInferFactory(new HeadInferConfig(1, 2, 16));
        var buffers = assertThrows(
                IllegalArgumentException.class,
                () -> KvCache.builder(SHAPE).store(staging).build());
        assertEquals(
                "stagingBuffers must be 0 (automatic) or in [3, 4096] (at least the 3 offloaded heads of a layer), was 2",
                buffers.getMessage());
        assertEquals(
                2, HeadInferConfig.forBudget(Budget.fraction(0.5), 4, 1000, 16).residentHeads());
        assertEquals(
                1, HeadInferConfig.forBudget(Budget.tokens(250), 4, 1000, 16).residentHeads());
    }

    @Test
    void theResidentOptionKeepsThatManyHeadsInTheFastTier() {
        var p = HeadStores.provider("headinfer:resident=2");
        assertEquals("headinfer:resident=2", p.name());
        assertTrue(p.description().endsWith("KV heads 0..1 of every layer resident"), p.description());
        HeadInferFactory f = (HeadInferFactory) p.factory(16);
        assertEquals(2, f.config().residentHeads());
        try (KvCache cache = KvCache.builder(SHAPE).store(f).build()) {
            float[] row = new float[SHAPE.kvRowFloats()];
            cache.append(0, row, 0, row, 0, 1);
            // two resident heads' first pages in the fast tier, two offloaded heads' in the slow tier
            assertEquals(f.fastTier().bytesHeld(), f.slowTier().bytesHeld());
        }
        var unknown = assertThrows(IllegalArgumentException.class, () -> HeadStores.provider("headinfer:r=2"));
        assertEquals("storage 'headinfer:r=2': unknown option 'r'; options: resident", unknown.getMessage());
        var negative = assertThrows(IllegalArgumentException.class, () -> HeadStores.provider("headinfer:resident=-1"));
        assertEquals(
                "storage 'headinfer:resident=-1': option resident must be in [0, kvHeads], was -1",
                negative.getMessage());
        var word = assertThrows(IllegalArgumentException.class, () -> HeadStores.provider("headinfer:resident=two"));
        assertEquals(
                "storage 'headinfer:resident=two': option resident must be an integer in [0, kvHeads], was 'two'",
                word.getMessage());
        var cuda = HeadStores.provider("headinfer-cuda:resident=3:slot=1");
        assertEquals("headinfer-cuda:resident=3:slot=1", cuda.name());
        assertTrue(cuda.description().contains("prefetched 1 at a time"), cuda.description());
        var slot = assertThrows(IllegalArgumentException.class, () -> HeadStores.provider("headinfer-cuda:slot=0"));
        assertEquals(
                "storage 'headinfer-cuda:slot=0': option slot (KV heads per staging slot) must be an integer in [1,"
                        + " kvHeads], was '0'",
                slot.getMessage());
        var other = assertThrows(IllegalArgumentException.class, () -> HeadStores.provider("headinfer-cuda:x=1"));
        assertEquals("storage 'headinfer-cuda:x=1': unknown option 'x'; options: resident, slot", other.getMessage());
    }

    @Test
    void registeredByName() {
        assertTrue(HeadStores.names().contains("headinfer"), HeadStores.names().toString());
        assertTrue(HeadStores.names().contains("retrieval"));
        assertTrue(HeadStores.names().contains("hgca"));
        try (KvCache cache = KvCache.builder(SHAPE)
                .store(HeadStores.factory("headinfer", 16))
                .build()) {
            assertEquals("headinfer", cache.storage());
        }
    }
}
