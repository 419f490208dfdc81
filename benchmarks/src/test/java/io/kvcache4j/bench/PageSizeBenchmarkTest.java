package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.store.NativeMemory;
import io.kvcache4j.store.PagedHeadStore;
import org.junit.jupiter.api.Test;

/** The two stores the page-size benchmark alternates hold the same rows and attend to the same bits. */
class PageSizeBenchmarkTest {

    @Test
    void bothPageSizesGiveTheSameBits() {
        long before = NativeMemory.liveBytes();
        for (String dtype : new String[] {"f16", "f32", "bf16"}) {
            for (int group : new int[] {1, 2, 4, 8}) {
                for (int pageTokens : new int[] {32, 64}) {
                    PageSizeBenchmark b = new PageSizeBenchmark();
                    b.pageTokens = pageTokens;
                    // head size 64 on the 64-token pages, the default 128 on the 32-token ones
                    b.headDim = pageTokens == 64 ? 64 : AttentionBenchmark.HEAD_DIM;
                    b.tokens = 1000;
                    b.dtype = dtype;
                    b.group = group;
                    b.setup();
                    try {
                        assertEquals(16, ((PagedHeadStore) b.small).pageTokens());
                        assertEquals(pageTokens, ((PagedHeadStore) b.large).pageTokens());
                        PageSizeBenchmark.Times t = new PageSizeBenchmark.Times();
                        t.reset();
                        b.alternate(t);
                        assertTrue(t.smallNs > 0 && t.largeNs > 0, t.smallNs + " / " + t.largeNs);
                        assertArrayEquals(b.smallOut, b.largeOut, dtype + " group " + group + " pages " + pageTokens);
                    } finally {
                        b.tearDown();
                    }
                }
            }
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    @Test
    void pageSizesThatCannotBeComparedAreRejected() {
        for (int pageTokens : new int[] {16, 24, 0}) {
            PageSizeBenchmark b = new PageSizeBenchmark();
            b.pageTokens = pageTokens;
            b.tokens = 64;
            b.dtype = "f16";
            b.group = 4;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::setup);
            assertTrue(e.getMessage().contains(String.valueOf(pageTokens)), e.getMessage());
        }
        for (int headDim : new int[] {0, 129}) {
            PageSizeBenchmark b = new PageSizeBenchmark();
            b.pageTokens = 32;
            b.tokens = 64;
            b.dtype = "f16";
            b.group = 4;
            b.headDim = headDim;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::setup);
            assertEquals("headDim must be in [1, 128], was " + headDim, e.getMessage());
        }
    }
}
