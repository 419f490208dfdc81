package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The layouts hold the same rows: only the pages' addresses differ, never the result. */
class PageLayoutBenchmarkTest {

    @Test
    void everyLayoutHoldsTheSameRowsAndGivesTheSameBits() {
        float[] expected = null;
        for (String placement : new String[] {"regions", "blocks"}) {
            for (int runPages : new int[] {1, 4, 16, 0}) {
                PageLayoutBenchmark b = new PageLayoutBenchmark();
                b.tokens = 200;
                b.runPages = runPages;
                b.placement = placement;
                b.setup();
                try {
                    assertEquals(200, b.stores[0].count());
                    assertEquals(200, b.stores[1].count());
                    b.attend();
                    if (expected == null) {
                        expected = b.out.clone();
                    } else {
                        assertArrayEquals(expected, b.out, placement + ", runPages " + runPages);
                    }
                } finally {
                    b.tearDown();
                }
            }
        }
    }

    @Test
    void negativeRunIsRejected() {
        PageLayoutBenchmark b = new PageLayoutBenchmark();
        b.tokens = 32;
        b.runPages = -1;
        b.placement = "regions";
        assertThrows(IllegalArgumentException.class, b::setup);
        b.runPages = 1;
        b.placement = "scattered";
        assertThrows(IllegalArgumentException.class, b::setup);
    }
}
