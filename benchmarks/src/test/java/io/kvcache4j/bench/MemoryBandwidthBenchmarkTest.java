package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kvcache4j.store.NativeMemory;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** The read ceiling sums exactly the bytes it claims to read: all of them, or runs of {@code runKb} KB. */
class MemoryBandwidthBenchmarkTest {

    @Test
    void readsEveryRunOrEveryOtherRun() {
        long before = NativeMemory.liveBytes();
        for (int threads : new int[] {1, 2}) {
            for (int runKb : new int[] {0, 4, 8}) {
                MemoryBandwidthBenchmark b = new MemoryBandwidthBenchmark();
                b.megabytes = 1;
                b.threads = threads;
                b.runKb = runKb;
                b.setup();
                try {
                    double expected = 0;
                    long bytes = b.buffer.byteSize();
                    long run = runKb == 0 ? bytes : 1024L * runKb;
                    for (long off = 0; off < bytes; off += 2 * run) {
                        for (long i = off; i < Math.min(bytes, off + run); i += 4) {
                            expected += b.buffer.get(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
                        }
                    }
                    float got = b.read();
                    assertEquals(expected, got, Math.abs(expected) * 1e-4, "threads " + threads + ", runKb " + runKb);
                } finally {
                    b.tearDown();
                }
            }
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    @Test
    void runsThatDoNotTileASliceAreRejected() {
        for (int runKb : new int[] {-1, 3, 1024}) {
            MemoryBandwidthBenchmark b = new MemoryBandwidthBenchmark();
            b.megabytes = 1;
            b.threads = 1;
            b.runKb = runKb;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, b::setup);
            assertEquals(true, e.getMessage().contains("runKb"), e.getMessage());
        }
    }
}
