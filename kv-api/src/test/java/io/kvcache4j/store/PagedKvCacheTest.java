package io.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.HeadView;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

class PagedKvCacheTest {
    static final ModelShape SHAPE = new ModelShape(2, 4, 2, 8);

    @Test
    void closeReturnsLiveBytesToWhereTheyWere() {
        long before = NativeMemory.liveBytes();
        long seed = TestSeeds.seed("close-live-bytes");
        SplittableRandom r = TestSeeds.random(seed);
        KvCache cache = KvCache.builder(SHAPE).pageTokens(16).build();
        int tokens = 37;
        for (int l = 0; l < SHAPE.layers(); l++) {
            cache.append(l, TestSeeds.floats(r, tokens * 16, 1), 0, TestSeeds.floats(r, tokens * 16, 1), 0, tokens);
        }
        // 37 tokens in pages of 16 -> 3 pages per head; 2 layers x 2 heads.
        PagedHeadStore probe = new PagedHeadStore(KvDType.F16, 8, 16, AttentionKernelsAccess.kernel());
        long pageBytes = probe.pageBytes();
        probe.close();
        assertEquals(2 * 2 * 3 * pageBytes, cache.bytesHeld());
        assertEquals(before + cache.bytesHeld(), NativeMemory.liveBytes());
        cache.close();
        assertEquals(before, NativeMemory.liveBytes(), "live bytes after close");
        cache.close(); // idempotent
        assertEquals(before, NativeMemory.liveBytes());
    }

    @Test
    void aFullCacheTakesThirtyTwoTokenPagesAndAnEvictingOneSixteen() {
        long seed = TestSeeds.seed("default-page-tokens");
        SplittableRandom r = TestSeeds.random(seed);
        assertEquals(32, KvCache.builder(SHAPE).pageTokens());
        assertEquals(16, KvCache.builder(SHAPE).policy(new ManualPolicy()).pageTokens());
        assertEquals(16, KvCache.builder(SHAPE).pageTokens(16).pageTokens());
        assertEquals(
                48,
                KvCache.builder(SHAPE).policy(new ManualPolicy()).pageTokens(48).pageTokens());
        long page16;
        long page32;
        try (PagedHeadStore a = new PagedHeadStore(KvDType.F16, 8, 16, AttentionKernelsAccess.kernel());
                PagedHeadStore b = new PagedHeadStore(KvDType.F16, 8, 32, AttentionKernelsAccess.kernel())) {
            page16 = a.pageBytes();
            page32 = b.pageBytes();
        }
        int tokens = 37;
        float[] k = TestSeeds.floats(r, tokens * 16, 1);
        float[] v = TestSeeds.floats(r, tokens * 16, 1);
        float[] q = TestSeeds.floats(r, 32, 1);
        // 37 tokens: 2 pages of 32 or 3 of 16 per head; 2 layers x 2 heads. Same outputs either way.
        float[] outFull = new float[32];
        float[] outEvicting = new float[32];
        try (KvCache full = KvCache.builder(SHAPE).build();
                KvCache evicting =
                        KvCache.builder(SHAPE).policy(new ManualPolicy()).build()) {
            for (int l = 0; l < SHAPE.layers(); l++) {
                full.append(l, k, 0, v, 0, tokens);
                evicting.append(l, k, 0, v, 0, tokens);
            }
            assertEquals(2 * 2 * 2 * page32, full.bytesHeld());
            assertEquals(2 * 2 * 3 * page16, evicting.bytesHeld());
            full.attend(1, q, 0, 1, outFull, 0);
            evicting.attend(1, q, 0, 1, outEvicting, 0);
        }
        assertArrayEquals(outEvicting, outFull, "seed " + seed);
    }

    @Test
    void useAfterCloseIsRejected() {
        KvCache cache = KvCache.builder(SHAPE).build();
        cache.close();
        var e = assertThrows(IllegalStateException.class, () -> cache.append(0, new float[16], 0, new float[16], 0, 1));
        assertEquals("cache is closed", e.getMessage());
        assertThrows(IllegalStateException.class, () -> cache.attend(0, new float[32], 0, 1, new float[32], 0));
        assertThrows(IllegalStateException.class, cache::bytesHeld);
    }

    @Test
    void badInputNamesTheValueAndTheAllowedRange() {
        try (KvCache cache = KvCache.builder(SHAPE).dtype(KvDType.F16).build()) {
            var layer = assertThrows(
                    IndexOutOfBoundsException.class, () -> cache.append(2, new float[16], 0, new float[16], 0, 1));
            assertEquals("layer 2 out of range [0, 2)", layer.getMessage());
            var len = assertThrows(
                    IllegalArgumentException.class, () -> cache.append(0, new float[15], 0, new float[16], 0, 1));
            assertEquals("keys: offset 0 + 16 floats exceeds array length 15", len.getMessage());
            float[] k = new float[32];
            k[16 + 8 + 3] = Float.NaN;
            var nan = assertThrows(IllegalArgumentException.class, () -> cache.append(0, k, 0, new float[32], 0, 2));
            assertEquals(
                    "key of layer 0, token 1 (position 1), kvHead 1, element 3 is NaN; must be finite and"
                            + " within [-65504.0, 65504.0] for f16",
                    nan.getMessage());
            float[] v = new float[16];
            v[0] = 70000f;
            var big = assertThrows(IllegalArgumentException.class, () -> cache.append(0, new float[16], 0, v, 0, 1));
            assertTrue(
                    big.getMessage().contains("is 70000.0; must be finite and within [-65504.0, 65504.0]"),
                    big.getMessage());
            assertEquals(0, cache.nextPosition(0), "rejected appends leave the cache unchanged");
            assertEquals(0, cache.bytesHeld());
            var early = assertThrows(
                    IllegalStateException.class, () -> cache.attend(0, new float[32], 0, 1, new float[32], 0));
            assertTrue(early.getMessage().contains("only 0 appended tokens wait"), early.getMessage());
            cache.append(0, new float[16], 0, new float[16], 0, 1);
            float[] q = new float[32];
            q[5] = Float.POSITIVE_INFINITY;
            var inf = assertThrows(IllegalArgumentException.class, () -> cache.attend(0, q, 0, 1, new float[32], 0));
            assertEquals("query of layer 0, token 0, element 5 is Infinity; must be finite", inf.getMessage());
        }
        var shape = assertThrows(IllegalArgumentException.class, () -> new ModelShape(1, 6, 4, 8));
        assertEquals("queryHeads 6 must be a multiple of kvHeads 4", shape.getMessage());
    }

    @Test
    void appendingPastTheHardCapacityIsRejected() {
        try (KvCache cache = KvCache.builder(SHAPE).capacityTokens(3).build()) {
            cache.append(0, new float[32], 0, new float[32], 0, 2);
            var e = assertThrows(
                    IllegalStateException.class, () -> cache.append(0, new float[32], 0, new float[32], 0, 2));
            assertEquals("appending 2 tokens to layer 0, kvHead 0 would hold 4 tokens; capacity is 3", e.getMessage());
            assertEquals(2, cache.retainedTokens(0, 0));
        }
    }

    @Test
    void evictionCompactsSlotsAndFreesPages() {
        long seed = TestSeeds.seed("compaction");
        SplittableRandom r = TestSeeds.random(seed);
        long before = NativeMemory.liveBytes();
        ModelShape shape = new ModelShape(1, 1, 1, 8);
        ManualPolicy policy = new ManualPolicy();
        try (KvCache cache =
                KvCache.builder(shape).dtype(KvDType.BF16).policy(policy).build()) {
            HeadSlots head = policy.access.head(0, 0);
            int col = head.addFloatColumn();
            List<float[]> keys = new ArrayList<>();
            float[] q = new float[8];
            float[] out = new float[8];
            for (int t = 0; t < 30; t++) {
                float[] k = TestSeeds.floats(r, 8, 1);
                for (int i = 0; i < 8; i++) {
                    k[i] = KvDType.BF16.round(k[i]);
                }
                keys.add(k);
                cache.append(0, k, 0, k, 0, 1);
                cache.attend(0, q, 0, 1, out, 0);
                head.floatColumn(col)[t] = t;
            }
            long pageBytes = PagedHeadStore.bytesFor(KvDType.BF16, 8, 16, 16);
            assertEquals(2 * pageBytes, cache.bytesHeld());
            int[] remove = {0, 3, 4, 5, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 29};
            head.evictAll(remove, remove.length);
            int[] kept = {1, 2, 6, 7, 8, 23, 24, 25, 26, 27, 28};
            assertEquals(kept.length, cache.retainedTokens(0, 0));
            assertEquals(pageBytes, cache.bytesHeld(), "11 slots in pages of 16 -> 1 page (19 removed: no spare)");
            assertEquals(before + cache.bytesHeld(), NativeMemory.liveBytes());
            float[] row = new float[8];
            HeadView view = cache.view(0, 0);
            for (int s = 0; s < kept.length; s++) {
                assertEquals(kept[s], view.position(s));
                assertEquals(kept[s], head.positions()[s]);
                assertEquals(kept[s], head.floatColumn(col)[s], "metadata column moves with its slot");
                view.readKey(s, row, 0);
                assertArrayEquals(keys.get(kept[s]), row, 0f);
            }
            head.evict(0); // O(1): last slot moves in
            assertEquals(28, view.position(0));
            assertEquals(10, view.count());
            var e = assertThrows(IllegalArgumentException.class, () -> head.evictAll(new int[] {3, 2}, 2));
            assertTrue(e.getMessage().contains("strictly increasing"), e.getMessage());
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    @Test
    void nCachesOnNThreadsAreBitIdenticalToSerial() throws Exception {
        long seed = TestSeeds.seed("threads");
        int n = 4;
        float[][] serial = new float[n][];
        for (int i = 0; i < n; i++) {
            serial[i] = runWorkload(seed + i);
        }
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<float[]>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                long s = seed + i;
                futures.add(pool.submit(() -> runWorkload(s)));
            }
            for (int i = 0; i < n; i++) {
                assertArrayEquals(serial[i], futures.get(i).get(), "cache " + i + " seed=" + seed);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private static float[] runWorkload(long seed) {
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(2, 8, 2, 64);
        int steps = 200;
        float[] result = new float[steps * shape.queryRowFloats()];
        try (KvCache cache = KvCache.builder(shape).build()) {
            for (int t = 0; t < steps; t++) {
                for (int l = 0; l < shape.layers(); l++) {
                    cache.append(l, TestSeeds.floats(r, 128, 1), 0, TestSeeds.floats(r, 128, 1), 0, 1);
                    cache.attend(l, TestSeeds.floats(r, 512, 1), 0, 1, result, t * shape.queryRowFloats());
                }
            }
        }
        return result;
    }

    @Test
    void decodeStepsAllocateNothing() {
        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        ModelShape shape = new ModelShape(2, 8, 2, 64);
        long seed = TestSeeds.seed("no-alloc");
        SplittableRandom r = TestSeeds.random(seed);
        // First attend every stored type, group and page size the direct kernels take, so that they are
        // compiled with all of them in their profiles, as in an engine that runs several caches.
        // Head sizes 64 and 128: a kernel's wider passes (a whole value chunk, block pairs) run only
        // where the head holds them, and a pass with more load sites is where C2 stops inlining.
        for (KvDType type : KvDType.values()) {
            for (int headDim : new int[] {64, 128}) {
                for (int group : new int[] {1, 2, 4, 8}) {
                    for (int pageTokens : new int[] {16, 32}) {
                        ModelShape other = new ModelShape(1, 2 * group, 2, headDim);
                        float[] ko = TestSeeds.floats(r, other.kvRowFloats(), 1);
                        float[] qo = TestSeeds.floats(r, other.queryRowFloats(), 1);
                        float[] oo = new float[qo.length];
                        try (KvCache c = KvCache.builder(other)
                                .dtype(type)
                                .pageTokens(pageTokens)
                                .build()) {
                            for (int t = 0; t < 1500; t++) {
                                c.append(0, ko, 0, ko, 0, 1);
                                c.attend(0, qo, 0, 1, oo, 0);
                            }
                        }
                    }
                }
            }
        }
        // Every stored type at groups of 4, each read in place by its own kernels, and f16 multi-head
        // attention and groups of 2 (read in place too), the latter at head size 128.
        java.util.List<java.util.Map.Entry<KvDType, ModelShape>> measuredCaches = new java.util.ArrayList<>();
        for (KvDType type : KvDType.values()) {
            measuredCaches.add(java.util.Map.entry(type, shape));
        }
        measuredCaches.add(java.util.Map.entry(KvDType.F16, new ModelShape(2, 2, 2, 64)));
        measuredCaches.add(java.util.Map.entry(KvDType.F16, new ModelShape(2, 2, 2, 128)));
        measuredCaches.add(java.util.Map.entry(KvDType.BF16, new ModelShape(2, 4, 2, 128)));
        for (var entry : measuredCaches) {
            KvDType measured = entry.getKey();
            ModelShape measuredShape = entry.getValue();
            float[] k = TestSeeds.floats(r, measuredShape.kvRowFloats(), 1);
            float[] v = TestSeeds.floats(r, measuredShape.kvRowFloats(), 1);
            float[] q = TestSeeds.floats(r, measuredShape.queryRowFloats(), 1);
            float[] out = new float[measuredShape.queryRowFloats()];
            try (KvCache cache = KvCache.builder(measuredShape)
                    .dtype(measured)
                    .capacityTokens(1 << 20)
                    .build()) {
                // Warm up until the JIT has compiled the decode path (the Vector API allocates until then):
                // rounds of 1,000 steps until one allocates nothing in attention. How many it takes depends
                // on the compile queue (other tests' shapes and types recompile the kernels), so the count
                // is not fixed; a path that still allocates after 12 rounds fails below as well.
                long tid = Thread.currentThread().threadId();
                int warmRounds = 0;
                for (long roundBytes = -1; roundBytes != 0 && warmRounds < 12; warmRounds++) {
                    roundBytes = 0;
                    for (int t = 0; t < 1000; t++) {
                        for (int l = 0; l < 2; l++) {
                            cache.append(l, k, 0, v, 0, 1);
                            long a0 = threads.getThreadAllocatedBytes(tid);
                            cache.attend(l, q, 0, 1, out, 0);
                            roundBytes += threads.getThreadAllocatedBytes(tid) - a0;
                        }
                    }
                }
                System.out.println("[no-alloc] " + measured + " " + entry.getValue() + ": warm after " + warmRounds
                        + " rounds of 1000 steps");
                long before = threads.getThreadAllocatedBytes(tid);
                long inAttention = 0;
                int steps = 2000;
                for (int t = 0; t < steps; t++) {
                    for (int l = 0; l < 2; l++) {
                        cache.append(l, k, 0, v, 0, 1);
                        long a0 = threads.getThreadAllocatedBytes(tid);
                        cache.attend(l, q, 0, 1, out, 0);
                        inAttention += threads.getThreadAllocatedBytes(tid) - a0;
                    }
                }
                long allocated = threads.getThreadAllocatedBytes(tid) - before;
                // Steady state is zero; a late JIT recompilation may box a few vectors once, never per step.
                assertTrue(
                        inAttention < steps,
                        measured + " " + entry.getValue() + ": bytes allocated by the attention path over " + steps
                                + " steps: " + inAttention);
                // A full cache grows: each new page costs its segment handle and its live-block record (under 192
                // bytes), and the on-heap positions column doubles (amortised: at most 8 bytes per appended token
                // per head). Nothing else is allocated per token.
                long newPages = 2L * 2 * steps / KvCacheBuilder.DEFAULT_PAGE_TOKENS;
                long appendedPerHead = steps;
                long allowed = newPages * 192 + 2L * 2 * 8 * appendedPerHead + 16 * 1024;
                assertTrue(
                        allocated <= allowed,
                        measured + " " + entry.getValue() + ": decode steps allocated " + allocated + " bytes over "
                                + steps + " steps (" + newPages + " new pages; allowed " + allowed + ")");
            }
        }
    }
}
