package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.store.NativeMemory;
import org.junit.jupiter.api.Test;

/** Layouts and placements hold the same rows: only the pages' addresses differ, never the result. */
class PageLayoutBenchmarkTest {

    @Test
    void everyLayoutAndPlacementGivesTheSameBits() {
        long before = NativeMemory.liveBytes();
        float[] expected = null;
        for (int runPages : new int[] {1, 4, 16, 0}) {
            PageLayoutBenchmark b = new PageLayoutBenchmark();
            b.tokens = 200;
            b.runPages = runPages;
            b.setup();
            try {
                for (int h = 0; h < 2; h++) {
                    assertEquals(200, b.regions[h].count());
                    assertEquals(200, b.blocks[h].count());
                    assertEquals(b.blocks[h].bytesHeld(), b.regions[h].bytesHeld());
                }
                assertTrue(!b.blocks[0].contiguousPages());
                b.blocks();
                float[] blocks = b.out.clone();
                b.regions();
                assertArrayEquals(blocks, b.out, "runPages " + runPages);
                if (expected == null) {
                    expected = blocks;
                } else {
                    assertArrayEquals(expected, blocks, "runPages " + runPages);
                }
                PageLayoutBenchmark.PlacementTimes t = new PageLayoutBenchmark.PlacementTimes();
                b.paired(t);
                assertTrue(t.blocksNs > 0 && t.regionsNs > 0, t.blocksNs + " / " + t.regionsNs);
            } finally {
                b.tearDown();
            }
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    @Test
    void negativeRunIsRejected() {
        PageLayoutBenchmark b = new PageLayoutBenchmark();
        b.tokens = 32;
        b.runPages = -1;
        assertThrows(IllegalArgumentException.class, b::setup);
    }
}
