package io.kvcache4j.eval.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Differential tests of the weight kernels: the active kernel and the scalar twin, each against a
 * float64 dequantize-then-dot reference, on random stored bytes of every supported type, row
 * lengths that straddle vector widths and block sizes, and rows at unaligned addresses.
 */
class WeightMatrixTest {
    static final GgmlType[] TYPES = {
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K
    };
    static final double TOLERANCE = 1e-5;

    @TempDir
    Path dir;

    static Stream<WeightKernel> kernels() {
        return Stream.of(WeightKernels.get(), WeightKernels.scalar()).distinct();
    }

    static Stream<Arguments> kernelsAndTypes() {
        List<Arguments> list = new ArrayList<>();
        kernels().forEach(k -> {
            for (GgmlType t : TYPES) {
                list.add(Arguments.of(k, t));
            }
        });
        return list.stream();
    }

    static int[] colsFor(GgmlType t) {
        return switch (t.blockSize()) {
            case 1 -> new int[] {1, 4, 6, 8, 13, 16, 25, 32, 64, 100, 128, 207, 256, 300, 512, 702, 1024};
            case 32 -> new int[] {32, 64, 96, 160, 224, 416, 1024};
            default -> new int[] {256, 512, 768, 1280};
        };
    }

    /** Random but finite stored bytes for {@code rows} rows of {@code cols} elements. */
    static byte[] randomRows(SplittableRandom r, GgmlType t, int rows, int cols) {
        int rowBytes = (int) t.bytesFor(cols);
        byte[] b = new byte[rows * rowBytes];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) r.nextInt(256);
        }
        MemorySegment s = MemorySegment.ofArray(b);
        int blocks = rows * cols / t.blockSize();
        switch (t) {
            case F32 -> {
                for (int i = 0; i < rows * cols; i++) {
                    s.set(GgmlQuants.LE_FLOAT, 4L * i, (float)
                            ((r.nextDouble() * 2 - 1) * Math.pow(2, r.nextInt(-8, 8))));
                }
            }
            case F16 -> {
                for (int i = 0; i < rows * cols; i++) {
                    // any finite bit pattern, subnormals included
                    short h;
                    do {
                        h = (short) r.nextInt(65536);
                    } while ((h & 0x7C00) == 0x7C00);
                    s.set(GgmlQuants.LE_SHORT, 2L * i, h);
                }
            }
            case BF16 -> {
                for (int i = 0; i < rows * cols; i++) {
                    // random sign and mantissa; exponents within ±40 (sums of huge values would overflow), or subnormal
                    int exp = r.nextInt(16) == 0 ? 0 : 127 + r.nextInt(-40, 41);
                    int h = (r.nextInt(2) << 15) | (exp << 7) | r.nextInt(128);
                    s.set(GgmlQuants.LE_SHORT, 2L * i, (short) h);
                }
            }
            case Q8_0, Q4_0 -> {
                for (int k = 0; k < blocks; k++) {
                    s.set(GgmlQuants.LE_SHORT, (long) k * t.blockBytes(), randomScale(r));
                }
            }
            case Q4_K -> {
                for (int k = 0; k < blocks; k++) {
                    s.set(GgmlQuants.LE_SHORT, (long) k * 144, randomScale(r));
                    s.set(GgmlQuants.LE_SHORT, (long) k * 144 + 2, randomScale(r));
                }
            }
            case Q6_K -> {
                for (int k = 0; k < blocks; k++) {
                    s.set(GgmlQuants.LE_SHORT, (long) k * 210 + 208, randomScale(r));
                }
            }
            default -> throw new IllegalArgumentException(t.toString());
        }
        return b;
    }

    static short randomScale(SplittableRandom r) {
        return Float.floatToFloat16((float) ((r.nextDouble() * 2 - 1) * Math.pow(2, r.nextInt(-12, 2))));
    }

    /** The matrix over a native copy of {@code bytes} placed at an odd address. */
    static MappedWeightMatrix matrix(Arena arena, GgmlType t, byte[] bytes, int rows, int cols, WeightKernel k) {
        MemorySegment seg = arena.allocate(bytes.length + 3L, 64);
        MemorySegment.copy(bytes, 0, seg, ValueLayout.JAVA_BYTE, 3, bytes.length);
        return new MappedWeightMatrix("w", t, rows, cols, seg, 3, t.bytesFor(cols), k);
    }

    @ParameterizedTest
    @MethodSource("kernelsAndTypes")
    void dotRowMatchesFloat64Reference(WeightKernel kernel, GgmlType type) {
        long seed = TestSeeds.seed("dot-" + kernel.name() + "-" + type);
        SplittableRandom r = TestSeeds.random(seed);
        try (Arena arena = Arena.ofShared()) {
            for (int cols : colsFor(type)) {
                int rows = 1 + r.nextInt(5);
                byte[] bytes = randomRows(r, type, rows, cols);
                MappedWeightMatrix w = matrix(arena, type, bytes, rows, cols, kernel);
                int xOff = r.nextInt(5);
                float[] x = TestSeeds.floats(r, xOff + cols + 3, 2f);
                int rowBytes = (int) type.bytesFor(cols);
                for (int row = 0; row < rows; row++) {
                    double[] mag = new double[cols];
                    double[] wr = ReferenceDequant.dequantize(type, bytes, row * rowBytes, cols, mag);
                    double ref = 0;
                    double bound = 0;
                    for (int i = 0; i < cols; i++) {
                        ref += wr[i] * x[xOff + i];
                        bound += mag[i] * Math.abs(x[xOff + i]);
                    }
                    float got = w.dotRow(row, x, xOff);
                    assertTrue(
                            Math.abs(got - ref) <= TOLERANCE * bound + 1e-30,
                            type + " cols=" + cols + " row=" + row + " got " + got + " ref " + ref + " bound " + bound
                                    + " kernel=" + kernel.name() + " seed=" + seed);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("kernelsAndTypes")
    void rowToFloatsMatchesFloat64Reference(WeightKernel kernel, GgmlType type) {
        long seed = TestSeeds.seed("row-" + kernel.name() + "-" + type);
        SplittableRandom r = TestSeeds.random(seed);
        try (Arena arena = Arena.ofShared()) {
            int cols = colsFor(type)[colsFor(type).length - 1];
            byte[] bytes = randomRows(r, type, 2, cols);
            MappedWeightMatrix w = matrix(arena, type, bytes, 2, cols, kernel);
            float[] dst = new float[cols + 7];
            w.rowToFloats(1, dst, 7);
            double[] ref = ReferenceDequant.dequantize(type, bytes, (int) type.bytesFor(cols), cols, null);
            for (int i = 0; i < cols; i++) {
                // ggml computes in float: d·sc·q rounds at most twice
                assertEquals(ref[i], dst[7 + i], Math.abs(ref[i]) * 3e-7 + 1e-30, type + " i=" + i + " seed=" + seed);
            }
        }
    }

    @Test
    void halfPrecisionInfinitiesAndNaNsAgreeBetweenTwins() {
        try (Arena arena = Arena.ofShared()) {
            int cols = 40;
            byte[] bytes = new byte[2 * cols];
            MemorySegment s = MemorySegment.ofArray(bytes);
            for (int i = 0; i < cols; i++) {
                s.set(GgmlQuants.LE_SHORT, 2L * i, Float.floatToFloat16(0.5f));
            }
            s.set(GgmlQuants.LE_SHORT, 2L * 9, (short) 0x7C00); // +inf
            float[] x = new float[cols];
            java.util.Arrays.fill(x, 1f);
            for (WeightKernel k : kernels().toList()) {
                assertEquals(
                        Float.POSITIVE_INFINITY,
                        matrix(arena, GgmlType.F16, bytes, 1, cols, k).dotRow(0, x, 0),
                        k.name());
            }
            s.set(GgmlQuants.LE_SHORT, 2L * 17, (short) 0x7E00); // NaN
            for (WeightKernel k : kernels().toList()) {
                assertTrue(
                        Float.isNaN(
                                matrix(arena, GgmlType.F16, bytes, 1, cols, k).dotRow(0, x, 0)),
                        k.name());
            }
        }
    }

    @ParameterizedTest
    @MethodSource("kernels")
    void matvecAndMatmulAreBitwiseDotRow(WeightKernel kernel) {
        long seed = TestSeeds.seed("matmul-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        try (Arena arena = Arena.ofShared()) {
            // odd and even row counts around the kernel's row pairs and row blocks, token counts
            // around its four-token tiles
            int[][] shapes = {{37, 5}, {40, 9}, {2, 2}, {3, 4}, {17, 3}};
            for (GgmlType type : TYPES)
                for (int[] shape : shapes)
                    for (int cols : new int[] {colsFor(type)[1], 1024}) {
                        int rows = shape[0];
                        int tokens = shape[1];
                        MappedWeightMatrix w = matrix(arena, type, randomRows(r, type, rows, cols), rows, cols, kernel);
                        float[] x = TestSeeds.floats(r, tokens * cols, 1f);
                        float[] y = new float[tokens * rows];
                        w.matmul(x, y, tokens);
                        for (int t = 0; t < tokens; t++) {
                            float[] xt = java.util.Arrays.copyOfRange(x, t * cols, (t + 1) * cols);
                            float[] yt = new float[rows + 2];
                            w.matvec(xt, 0, yt, 2);
                            for (int row = 0; row < rows; row++) {
                                String what = type + " " + rows + "x" + cols + " token " + t + " row " + row + " seed="
                                        + seed;
                                assertEquals(w.dotRow(row, x, t * cols), y[t * rows + row], what);
                                assertEquals(y[t * rows + row], yt[2 + row], what);
                            }
                        }
                    }
        }
    }

    /**
     * Once compiled, an F16 prefill matmul on the calling thread allocates nothing per call: no vector
     * boxed by a call C2 did not inline (the tile's lane sums once were, 18 KB per call of this
     * size), no scratch, no row-range object. The JIT's timing is not fixed, so rounds run until one
     * allocates nothing, and the test fails only if none does within the time limit. {@link
     * ParallelMatmulAllocationTest} checks the split path.
     */
    @ParameterizedTest
    @MethodSource("kernels")
    void compiledMatmulAllocatesNothingPerCall(WeightKernel kernel) {
        var threads = (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().threadId();
        long seed = TestSeeds.seed("matmul-alloc-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        int rows = 32;
        int cols = 128;
        int tokens = 8;
        try (Arena arena = Arena.ofShared()) {
            MappedWeightMatrix w =
                    matrix(arena, GgmlType.F16, randomRows(r, GgmlType.F16, rows, cols), rows, cols, kernel);
            float[] x = TestSeeds.floats(r, tokens * cols, 1f);
            float[] y = new float[tokens * rows];
            int calls = 500;
            long best = Long.MAX_VALUE;
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (System.nanoTime() < deadline) {
                long before = threads.getThreadAllocatedBytes(tid);
                for (int c = 0; c < calls; c++) {
                    w.matmul(x, y, tokens);
                }
                best = Math.min(best, (threads.getThreadAllocatedBytes(tid) - before) / calls);
                if (best == 0) {
                    break;
                }
            }
            System.out.println("[alloc] " + kernel.name() + " F16 matmul " + rows + "x" + cols + ", " + tokens
                    + " tokens: " + best + " bytes per call (least of the rounds)");
            assertTrue(best == 0, "bytes allocated per compiled matmul call: " + best + ", want 0, seed=" + seed);
        }
    }

    /** One stored row against several tokens, the kernel's {@code dotTokens} called directly. */
    @ParameterizedTest
    @MethodSource("kernels")
    void dotTokensIsBitwiseDot(WeightKernel kernel) {
        long seed = TestSeeds.seed("dot-tokens-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        try (Arena arena = Arena.ofShared()) {
            for (GgmlType type : TYPES)
                for (int cols : new int[] {colsFor(type)[1], 1024})
                    for (int tokens = 1; tokens <= 6; tokens++) {
                        byte[] bytes = randomRows(r, type, 1, cols);
                        MemorySegment seg = arena.allocate(bytes.length + 3L, 64);
                        MemorySegment.copy(bytes, 0, seg, ValueLayout.JAVA_BYTE, 3, bytes.length);
                        float[] x = TestSeeds.floats(r, tokens * cols, 1f);
                        float[] y = new float[2 + 3 * tokens];
                        kernel.dotTokens(type, seg, 3, x, tokens, cols, y, 2, 3, new float[cols]);
                        for (int t = 0; t < tokens; t++) {
                            assertEquals(
                                    kernel.dot(type, seg, 3, x, t * cols, cols),
                                    y[2 + 3 * t],
                                    type + " " + cols + " cols, token " + t + " of " + tokens + ", seed=" + seed);
                        }
                    }
        }
    }

    @Test
    void parallelProductsAreDeterministic() {
        long seed = TestSeeds.seed("parallel");
        SplittableRandom r = TestSeeds.random(seed);
        try (Arena arena = Arena.ofShared()) {
            int rows = 300;
            int cols = 1024;
            assertTrue((long) rows * cols >= MappedWeightMatrix.PARALLEL_THRESHOLD, "exercises the parallel path");
            MappedWeightMatrix w = matrix(
                    arena, GgmlType.Q8_0, randomRows(r, GgmlType.Q8_0, rows, cols), rows, cols, WeightKernels.get());
            float[] x = TestSeeds.floats(r, 3 * cols, 1f);
            float[] y1 = new float[3 * rows];
            float[] y2 = new float[3 * rows];
            w.matmul(x, y1, 3);
            w.matmul(x, y2, 3);
            float[] v = new float[rows];
            w.matvec(x, v);
            for (int row = 0; row < rows; row++) {
                float serial = w.dotRow(row, x, 0);
                assertEquals(serial, v[row], "row " + row + " seed=" + seed);
                assertEquals(serial, y1[row], "row " + row + " seed=" + seed);
            }
            assertEquals(java.util.Arrays.toString(y1), java.util.Arrays.toString(y2));
        }
    }

    @ParameterizedTest
    @MethodSource("kernels")
    void resultsDoNotChangeOnceTheKernelIsCompiled(WeightKernel kernel) {
        long seed = TestSeeds.seed("jit-tiers-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        try (Arena arena = Arena.ofShared()) {
            GgmlType[] types = {GgmlType.BF16, GgmlType.Q6_K};
            int cols = 512;
            float[] x = TestSeeds.floats(r, cols, 1f);
            MappedWeightMatrix[] ws = new MappedWeightMatrix[types.length];
            float[] cold = new float[types.length];
            for (int i = 0; i < types.length; i++) {
                ws[i] = matrix(arena, types[i], randomRows(r, types[i], 1, cols), 1, cols, kernel);
                cold[i] = ws[i].dotRow(0, x, 0); // before the JIT has compiled this path
            }
            float sink = 0;
            for (int k = 0; k < 20_000; k++) {
                for (MappedWeightMatrix w : ws) {
                    sink += w.dotRow(0, x, 0);
                }
            }
            for (int i = 0; i < types.length; i++) {
                assertEquals(
                        cold[i], ws[i].dotRow(0, x, 0), types[i] + " " + kernel.name() + " seed=" + seed + " " + sink);
            }
        }
    }

    @Test
    void badArgumentsNameTheValueAndRange() {
        try (Arena arena = Arena.ofShared()) {
            MappedWeightMatrix w = matrix(arena, GgmlType.F32, new byte[4 * 6], 2, 3, WeightKernels.scalar());
            IndexOutOfBoundsException row =
                    assertThrows(IndexOutOfBoundsException.class, () -> w.dotRow(2, new float[3], 0));
            assertTrue(row.getMessage().contains("row 2 out of range [0, 2)"), row.getMessage());
            IllegalArgumentException x =
                    assertThrows(IllegalArgumentException.class, () -> w.dotRow(0, new float[3], 1));
            assertTrue(x.getMessage().contains("x needs 3 floats from offset 1 but has length 3"), x.getMessage());
            assertThrows(IllegalArgumentException.class, () -> w.matvec(new float[3], new float[1]));
            assertThrows(IllegalArgumentException.class, () -> w.matmul(new float[6], new float[4], 3));
            assertThrows(IllegalArgumentException.class, () -> w.matmul(new float[6], new float[4], -1));
        }
    }

    @Test
    void weightsFromAFileUseTheMapping() throws Exception {
        long seed = TestSeeds.seed("file-weights");
        SplittableRandom r = TestSeeds.random(seed);
        GgufWriter wr = new GgufWriter();
        List<byte[]> data = new ArrayList<>();
        for (GgmlType t : TYPES) {
            int cols = colsFor(t)[0] * (t.blockSize() == 1 ? 13 : 1);
            byte[] b = randomRows(r, t, 3, cols);
            data.add(b);
            wr.addTensorBytes("w." + t, t, new long[] {cols, 3}, b);
        }
        Path p = dir.resolve("k.gguf");
        wr.write(p);
        try (GgufModel m = GgufModel.open(p)) {
            for (int i = 0; i < TYPES.length; i++) {
                GgmlType t = TYPES[i];
                WeightMatrix w = m.weights("w." + t);
                int cols = w.cols();
                float[] x = TestSeeds.floats(r, cols, 1f);
                for (int row = 0; row < 3; row++) {
                    double[] mag = new double[cols];
                    double[] ref = ReferenceDequant.dequantize(t, data.get(i), row * (int) t.bytesFor(cols), cols, mag);
                    double want = 0;
                    double bound = 0;
                    for (int k = 0; k < cols; k++) {
                        want += ref[k] * x[k];
                        bound += mag[k] * Math.abs(x[k]);
                    }
                    assertEquals(want, w.dotRow(row, x, 0), TOLERANCE * bound + 1e-30, t + " seed=" + seed);
                }
                float[] all = m.floats("w." + t);
                assertEquals(3 * cols, all.length);
            }
        }
    }
}
