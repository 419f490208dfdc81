package io.kvcache4j.eval.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.FreshJvm;
import io.kvcache4j.TestSeeds;
import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * A product large enough to split its rows over the row pool allocates nothing per call, on any
 * thread, once compiled. Runs in a child JVM whose common fork-join parallelism is 4, so that the
 * split happens whatever this machine's core count.
 */
class ParallelMatmulAllocationTest {
    static final int ROWS = 512;
    static final int COLS = 512;
    static final int TOKENS = 8;

    @Test
    void splitMatmulAndMatvecAllocateNothingPerCall() throws Exception {
        long seed = TestSeeds.seed("parallel-matmul-alloc");
        String console = FreshJvm.run(
                ParallelMatmulAllocationTest.class,
                List.of("-Djava.util.concurrent.ForkJoinPool.common.parallelism=4"),
                List.of(Long.toString(seed)),
                180);
        System.out.println("[child] " + console.strip());
        String line = console.lines()
                .filter(l -> l.startsWith("bytes per call "))
                .findFirst()
                .orElseThrow(() -> new AssertionError("child printed no result:\n" + console));
        String[] parts = line.substring("bytes per call ".length()).split(" ");
        assertEquals("threads=4", parts[2], line);
        long matmul = Long.parseLong(parts[0]);
        long matvec = Long.parseLong(parts[1]);
        assertTrue(
                matmul == 0 && matvec == 0, "bytes allocated per split call (all threads): " + line + ", seed=" + seed);
    }

    /**
     * Child entry: {@code <seed>}. Repeats rounds of 200 calls (until a round allocates nothing, or
     * 60 s) and prints the least bytes per call of all threads together for matmul and matvec.
     */
    public static void main(String[] args) {
        long seed = Long.parseLong(args[0]);
        var mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        SplittableRandom r = TestSeeds.random(seed);
        try (Arena arena = Arena.ofShared()) {
            MappedWeightMatrix w = WeightMatrixTest.matrix(
                    arena,
                    GgmlType.F16,
                    WeightMatrixTest.randomRows(r, GgmlType.F16, ROWS, COLS),
                    ROWS,
                    COLS,
                    WeightKernels.get());
            if ((long) ROWS * COLS < MappedWeightMatrix.PARALLEL_THRESHOLD
                    || (long) ROWS * COLS * TOKENS < MappedWeightMatrix.PARALLEL_THRESHOLD) {
                throw new IllegalStateException("the test matrix no longer splits");
            }
            float[] x = TestSeeds.floats(r, TOKENS * COLS, 1f);
            float[] y = new float[TOKENS * ROWS];
            int calls = 200;
            long bestMatmul = Long.MAX_VALUE;
            long bestMatvec = Long.MAX_VALUE;
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (System.nanoTime() < deadline && (bestMatmul > 0 || bestMatvec > 0)) {
                long before = mx.getTotalThreadAllocatedBytes();
                for (int c = 0; c < calls; c++) {
                    w.matmul(x, y, TOKENS);
                }
                long mid = mx.getTotalThreadAllocatedBytes();
                for (int c = 0; c < calls; c++) {
                    w.matvec(x, 0, y, 0);
                }
                long after = mx.getTotalThreadAllocatedBytes();
                bestMatmul = Math.min(bestMatmul, (mid - before) / calls);
                bestMatvec = Math.min(bestMatvec, (after - mid) / calls);
            }
            System.out.println("bytes per call " + bestMatmul + " " + bestMatvec + " threads=" + RowPool.THREADS);
        }
    }
}
