package io.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.GroupAttention;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Pages in regions: consecutive addresses, exact accounting, and the same bits as blocks. */
class PagePlacementTest {
    static final int D = 128;
    static final int PAGE = 16;

    @Test
    void regionsCountCommittedBytesAndRefuseMisuse() {
        long os = NativeMemory.regionPageSize();
        assumeTrue(os > 0, "regions need Linux");
        long before = NativeMemory.liveBytes();
        long regionsBefore = NativeMemory.liveRegions();
        var region = NativeMemory.reserve(8 * os);
        assertNotNull(region);
        assertEquals(before, NativeMemory.liveBytes(), "reserving holds no memory");
        NativeMemory.commit(region, 2 * os, 2 * os);
        assertEquals(before + 2 * os, NativeMemory.liveBytes());
        region.set(ValueLayout.JAVA_LONG, 2 * os, 42L);
        assertEquals(42L, region.get(ValueLayout.JAVA_LONG, 2 * os));
        NativeMemory.decommit(region, 2 * os, os);
        assertEquals(before + os, NativeMemory.liveBytes());
        NativeMemory.commit(region, 2 * os, os);
        assertEquals(0L, region.get(ValueLayout.JAVA_LONG, 2 * os), "a decommitted page comes back as zeros");

        var misaligned = assertThrows(IllegalArgumentException.class, () -> NativeMemory.commit(region, 1, os));
        assertTrue(misaligned.getMessage().contains("whole pages of " + os), misaligned.getMessage());
        assertThrows(IllegalArgumentException.class, () -> NativeMemory.commit(region, 8 * os, os));
        assertThrows(IllegalStateException.class, () -> NativeMemory.decommit(region, 0, 8 * os));
        var held = assertThrows(IllegalStateException.class, () -> NativeMemory.release(region));
        assertTrue(held.getMessage().contains("committed"), held.getMessage());
        assertThrows(IllegalArgumentException.class, () -> NativeMemory.reserve(os + 1));

        NativeMemory.decommit(region, 2 * os, 2 * os);
        NativeMemory.release(region);
        assertThrows(IllegalStateException.class, () -> NativeMemory.release(region));
        assertThrows(IllegalStateException.class, () -> NativeMemory.commit(region, 0, os));
        assertEquals(before, NativeMemory.liveBytes());
        assertEquals(regionsBefore, NativeMemory.liveRegions());
    }

    @Test
    void storesGrowingInTurnKeepTheirPagesConsecutive() {
        assumeTrue(NativeMemory.regionPageSize() > 0, "regions need Linux");
        long before = NativeMemory.liveBytes();
        long regionsBefore = NativeMemory.liveRegions();
        long seed = TestSeeds.seed("page-placement");
        SplittableRandom r = TestSeeds.random(seed);
        PagedHeadStore a = new PagedHeadStore(KvDType.F16, D, PAGE, AttentionKernelsAccess.kernel());
        PagedHeadStore b = new PagedHeadStore(KvDType.F16, D, PAGE, AttentionKernelsAccess.kernel());
        try {
            assertTrue(a.contiguousPages());
            float[] row = new float[D];
            // one token each in turn, as a cache appends a decode step to every head; past the first region
            int tokens = (int) (PagedHeadStore.FIRST_REGION_BYTES / a.pageBytes()) * PAGE + 5 * PAGE + 3;
            for (int t = 0; t < tokens; t++) {
                for (PagedHeadStore s : new PagedHeadStore[] {a, b}) {
                    fill(r, row);
                    s.append(row, 0, row, 0, 0, 1);
                }
            }
            assertConsecutive(a);
            assertConsecutive(b);
            assertEquals(before + a.bytesHeld() + b.bytesHeld(), NativeMemory.liveBytes());

            // evict down across page boundaries and grow back: the spare and the freed pages stay in place
            int[] none = new int[0];
            a.compact(a.count() - 1, none, 0, a.count() - 1); // one slot: keeps a spare page
            a.compact(tokens - 3 * PAGE, none, 0, tokens - 3 * PAGE);
            assertEquals(before + a.bytesHeld() + b.bytesHeld(), NativeMemory.liveBytes());
            for (int t = 0; t < 2 * PAGE; t++) {
                fill(r, row);
                a.append(row, 0, row, 0, 0, 1);
            }
            assertConsecutive(a);
            assertEquals(before + a.bytesHeld() + b.bytesHeld(), NativeMemory.liveBytes());
        } finally {
            a.close();
            b.close();
        }
        assertEquals(before, NativeMemory.liveBytes(), "live bytes after close");
        assertEquals(regionsBefore, NativeMemory.liveRegions(), "regions after close");
    }

    @Test
    void placementDoesNotChangeABit() {
        long before = NativeMemory.liveBytes();
        long seed = TestSeeds.seed("page-placement-bits");
        PagedHeadStore regions = new PagedHeadStore(KvDType.F16, D, PAGE, AttentionKernelsAccess.kernel(), true);
        PagedHeadStore blocks = new PagedHeadStore(KvDType.F16, D, PAGE, AttentionKernelsAccess.kernel(), false);
        try {
            assertFalse(blocks.contiguousPages());
            SplittableRandom r = TestSeeds.random(seed);
            float[] row = new float[D];
            for (int t = 0; t < 300; t++) {
                fill(r, row);
                regions.append(row, 0, row, 0, 0, 1);
                blocks.append(row, 0, row, 0, 0, 1);
            }
            int[] sources = {299, 298};
            regions.compact(7, sources, 2, 250);
            blocks.compact(7, sources, 2, 250);
            // 19 pages -> 16: the regions keep two of the three freed pages as spares, blocks none
            assertEquals(PagedHeadStore.maxSpares(16), 2);
            assertEquals(blocks.bytesHeld() + 2 * blocks.pageBytes(), regions.bytesHeld());
            float[] q = TestSeeds.floats(r, 4 * D, 1);
            float[] outRegions = new float[4 * D];
            float[] outBlocks = new float[4 * D];
            SlotSelection all = new SlotSelection();
            GroupAttention st = new GroupAttention(4, D, AttentionKernelsAccess.kernel());
            st.begin(q, 0, 0.125f);
            regions.attend(st, all.prefix(250));
            st.finish(outRegions, 0);
            st.begin(q, 0, 0.125f);
            blocks.attend(st, all.prefix(250));
            st.finish(outBlocks, 0);
            assertArrayEquals(outBlocks, outRegions, "seed " + seed);
        } finally {
            regions.close();
            blocks.close();
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    @Test
    void aDecodingCacheAtAPageMultipleBudgetHoldsExactlyWhatItReports() {
        long before = NativeMemory.liveBytes();
        long regionsBefore = NativeMemory.liveRegions();
        long seed = TestSeeds.seed("page-placement-cache");
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(1, 4, 2, D);
        ManualPolicy policy = new ManualPolicy();
        int budget = 6 * PAGE;
        try (KvCache cache =
                KvCache.builder(shape).dtype(KvDType.F16).policy(policy).build()) {
            float[] q = new float[shape.queryRowFloats()];
            float[] out = new float[shape.queryRowFloats()];
            long pageBytes = PagedHeadStore.bytesFor(KvDType.F16, D, PAGE, PAGE);
            for (int t = 0; t < 400; t++) {
                float[] kv = TestSeeds.floats(r, shape.kvRowFloats(), 1);
                cache.append(0, kv, 0, kv, 0, 1);
                cache.attend(0, q, 0, 1, out, 0);
                for (int h = 0; h < shape.kvHeads(); h++) {
                    HeadSlots head = policy.access.head(0, h);
                    if (head.count() > budget) {
                        head.evict(r.nextInt(head.count() - 1));
                    }
                }
                assertEquals(before + cache.bytesHeld(), NativeMemory.liveBytes(), "step " + t + ", seed " + seed);
            }
            // six full pages per head and the spare that a budget on a page boundary keeps
            assertEquals(2 * 7 * pageBytes, cache.bytesHeld());
        }
        assertEquals(before, NativeMemory.liveBytes(), "live bytes after close");
        assertEquals(regionsBefore, NativeMemory.liveRegions(), "regions after close");
    }

    @Test
    void regionSparesServeABatchEvictingPolicyAndLeaveWhenUnused() {
        assumeTrue(NativeMemory.regionPageSize() > 0, "regions need Linux");
        long before = NativeMemory.liveBytes();
        long seed = TestSeeds.seed("page-placement-spares");
        SplittableRandom r = TestSeeds.random(seed);
        PagedHeadStore s = new PagedHeadStore(KvDType.F16, D, PAGE, AttentionKernelsAccess.kernel());
        try {
            float[] row = new float[D];
            int budget = 64 * PAGE;
            long pageBytes = s.pageBytes();
            // a lagged policy: grow by 32 tokens, then evict 32 at once, 20 times
            for (int cycle = 0; cycle < 20; cycle++) {
                int target = cycle == 0 ? budget + 2 * PAGE : s.count() + 2 * PAGE;
                while (s.count() < target) {
                    fill(r, row);
                    s.append(row, 0, row, 0, 0, 1);
                }
                assertEquals(66 * pageBytes, s.bytesHeld(), "peak of cycle " + cycle);
                s.compact(budget, new int[0], 0, budget);
                assertEquals(66 * pageBytes, s.bytesHeld(), "the two freed pages stay as spares, cycle " + cycle);
                assertEquals(before + s.bytesHeld(), NativeMemory.liveBytes());
            }
            // a batch of single-slot compactions (a policy evicting its victims one by one) keeps them
            for (int c = budget - 1; c >= budget - PAGE - 1; c--) {
                s.compact(c, new int[0], 0, c);
            }
            assertEquals(66 * pageBytes, s.bytesHeld(), "63 pages and three spares");
            // appends that do not reach the spares, then a compaction: the unused spares go back
            fill(r, row);
            s.append(row, 0, row, 0, 0, 1);
            s.compact(budget - PAGE - 1, new int[0], 0, budget - PAGE - 1);
            assertEquals(63 * pageBytes, s.bytesHeld(), "no append took the spares: decommitted");
            assertEquals(before + s.bytesHeld(), NativeMemory.liveBytes());
            // a large compaction keeps at most maxSpares
            s.compact(PAGE, new int[0], 0, PAGE);
            assertEquals((1 + PagedHeadStore.maxSpares(1)) * pageBytes, s.bytesHeld());
            assertEquals(before + s.bytesHeld(), NativeMemory.liveBytes());
        } finally {
            s.close();
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    private static void assertConsecutive(PagedHeadStore s) {
        int firstRegionPages = (int) (PagedHeadStore.FIRST_REGION_BYTES / s.pageBytes());
        int pages = (s.count() + PAGE - 1) / PAGE;
        for (int p = 1; p < pages; p++) {
            if (p == firstRegionPages) {
                continue; // the second region starts wherever the system put it
            }
            assertEquals(
                    s.pageAddress(p - 1) + s.pageBytes(), s.pageAddress(p), "page " + p + " follows page " + (p - 1));
        }
    }

    private static void fill(SplittableRandom r, float[] row) {
        for (int i = 0; i < row.length; i++) {
            row[i] = (float) r.nextGaussian();
        }
    }
}
