package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.store.NativeMemory;
import org.junit.jupiter.api.Test;

/** Both halves of the alternating benchmark do the work the separate benchmarks do, on equal byte counts. */
class AttentionVsReadBenchmarkTest {

    @Test
    void alternatesAttentionAndAReadOfTheSameBytes() {
        long before = NativeMemory.liveBytes();
        for (int threads : new int[] {1, 2}) {
            AttentionVsReadBenchmark b = new AttentionVsReadBenchmark();
            b.tokens = 4096;
            b.pageTokens = 16;
            b.threads = threads;
            b.setup();
            AttentionBenchmark alone = new AttentionBenchmark();
            alone.tokens = 4096;
            alone.dtype = "f16";
            alone.impl = "vector";
            alone.pageTokens = 16;
            alone.threads = threads;
            alone.setup();
            try {
                assertEquals(4096L * AttentionVsReadBenchmark.TOKEN_BYTES, b.read.buffer.byteSize());
                AttentionVsReadBenchmark.Times t = new AttentionVsReadBenchmark.Times();
                t.reset();
                float x = b.alternate(t);
                assertTrue(Float.isFinite(x), "result " + x);
                assertTrue(t.attentionNs > 0 && t.readNs > 0, t.attentionNs + " / " + t.readNs);
                alone.decode();
                assertArrayEquals(alone.out, b.attention.out, "threads " + threads);
            } finally {
                alone.tearDown();
                b.tearDown();
            }
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    @Test
    void tokensThatAreNotWholeMegabytesAreRejected() {
        long before = NativeMemory.liveBytes();
        for (int tokens : new int[] {0, 1000, 3072}) {
            AttentionVsReadBenchmark b = new AttentionVsReadBenchmark();
            b.tokens = tokens;
            b.pageTokens = 16;
            b.threads = 1;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::setup);
            assertTrue(
                    e.getMessage().contains("2048") && e.getMessage().contains(String.valueOf(tokens)), e.getMessage());
        }
        assertEquals(before, NativeMemory.liveBytes());
    }
}
