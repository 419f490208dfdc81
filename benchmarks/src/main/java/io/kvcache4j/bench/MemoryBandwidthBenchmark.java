package io.kvcache4j.bench;

import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.store.NativeMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The machine's read ceiling: one vectorized pass summing {@code megabytes} MB of an off-heap buffer
 * (far larger than the caches), on {@code threads} threads (0: every core), each summing one
 * contiguous slice, run by the same {@link AttentionPool} mechanism the cache's attention uses.
 * Attention throughput is reported against the ceiling of the same thread count.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class MemoryBandwidthBenchmark {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    @Param({"64", "512"})
    public int megabytes;

    /**
     * 0: each thread reads its whole slice. Otherwise each thread reads runs of {@code runKb} KB and
     * skips the {@code runKb} KB after each, as a pass over only the keys (or only the values) of a
     * store's pages does (f16, head_dim 128, 16-token pages: 4 KB of keys, then 4 KB of values):
     * half the bytes, so compare times, not rates.
     */
    @Param({"0"})
    public int runKb;

    /** Threads reading; 0 means every core. */
    @Param({"1", "0"})
    public int threads;

    MemorySegment buffer;
    AttentionPool pool;
    float[] sums;
    AttentionPool.Task slices;

    @Setup(Level.Trial)
    public void setup() {
        long bytes = (long) megabytes << 20;
        int n = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        long slice = bytes / n / 4096 * 4096;
        if (runKb < 0 || (runKb > 0 && (slice % (2048L * runKb) != 0 || slice * n != bytes))) {
            throw new IllegalArgumentException("runKb must be 0, or tile each of the " + n + " threads' slices of "
                    + slice + " bytes (" + bytes + " in all) in runs of 2 × runKb KB; was " + runKb);
        }
        buffer = NativeMemory.allocate(bytes);
        for (long i = 0; i < bytes; i += 4) {
            buffer.set(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) (i & 1023) * 1e-3f);
        }
        pool = AttentionPool.create(n);
        sums = new float[n];
        long run = 1024L * runKb;
        slices = run == 0
                ? (item, worker) -> sums[item] = sum(buffer, item * slice, item == n - 1 ? bytes : (item + 1) * slice)
                : (item, worker) -> {
                    float s = 0;
                    for (long off = item * slice, end = off + slice; off < end; off += 2 * run) {
                        s += sum(buffer, off, off + run);
                    }
                    sums[item] = s;
                };
    }

    @Benchmark
    public float read() {
        pool.run(slices, sums.length);
        float total = 0;
        for (float x : sums) {
            total += x;
        }
        return total;
    }

    static float sum(MemorySegment buffer, long from, long to) {
        long bytes = to;
        long step = 4L * F.vectorByteSize();
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int vb = F.vectorByteSize();
        for (long off = from; off <= bytes - step; off += step) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, buffer, off, ByteOrder.LITTLE_ENDIAN));
            a1 = a1.add(FloatVector.fromMemorySegment(F, buffer, off + vb, ByteOrder.LITTLE_ENDIAN));
            a2 = a2.add(FloatVector.fromMemorySegment(F, buffer, off + 2L * vb, ByteOrder.LITTLE_ENDIAN));
            a3 = a3.add(FloatVector.fromMemorySegment(F, buffer, off + 3L * vb, ByteOrder.LITTLE_ENDIAN));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        pool.close();
        NativeMemory.free(buffer);
    }
}
