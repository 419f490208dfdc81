package io.kvcache4j.eval.gguf;

import io.kvcache4j.FreshJvm;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * A fixed set of weight-matrix products whose results must have the same bits in every JVM, JIT
 * tier and thread: for every supported weight type and row lengths that straddle vector widths and
 * block sizes, a matvec and a five-token matmul (the {@code dotRowsTokens} tiles of F16/BF16: a four-token tile
 * and one token more), plus two
 * matrices large enough for the row-parallel path.
 *
 * <p>Each case draws its bytes and inputs from its own seed, so cases can run in any order and on
 * any thread. {@link #main} runs them in a child JVM: {@code serial} computes every case once, so
 * each result is the first call's; {@code parallel} spreads the cases over {@value #TASKS} tasks on
 * {@value #THREADS} threads from a cold start.
 */
final class WeightDeterminismWorkload {
    static final int ROWS = 5;
    static final int TOKENS = 5;
    static final int TASKS = 16;
    static final int THREADS = 4;

    private WeightDeterminismWorkload() {}

    /** One matrix: {@code rows × cols} of {@code type}. */
    record Case(int index, GgmlType type, int rows, int cols) {
        @Override
        public String toString() {
            return type + " " + rows + "x" + cols;
        }
    }

    static List<Case> cases() {
        List<Case> cases = new ArrayList<>();
        for (GgmlType t : WeightMatrixTest.TYPES) {
            int[] cols = switch (t.blockSize()) {
                case 1 -> new int[] {13, 64, 207, 512};
                case 32 -> new int[] {32, 160, 1024};
                default -> new int[] {256, 768};
            };
            for (int c : cols) {
                cases.add(new Case(cases.size(), t, ROWS, c));
            }
        }
        // rows × cols × TOKENS over MappedWeightMatrix.PARALLEL_THRESHOLD: matmul splits the rows
        // over the common pool
        cases.add(new Case(cases.size(), GgmlType.Q8_0, 96, 1024));
        cases.add(new Case(cases.size(), GgmlType.F16, 96, 1024));
        return cases;
    }

    /** {@code matvec} of the first token's input, then {@code matmul} of all {@value #TOKENS} tokens. */
    static float[] run(WeightKernel kernel, Case c, long seed) {
        SplittableRandom r = new SplittableRandom(seed + 0x9E3779B97F4A7C15L * (c.index() + 1));
        byte[] bytes = WeightMatrixTest.randomRows(r, c.type(), c.rows(), c.cols());
        float[] x = new float[TOKENS * c.cols()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) ((r.nextDouble() * 2 - 1) * 2);
        }
        float[] y = new float[(1 + TOKENS) * c.rows()];
        // shared: the row-parallel path reads the weights from common-pool threads
        try (Arena arena = Arena.ofShared()) {
            MappedWeightMatrix w = WeightMatrixTest.matrix(arena, c.type(), bytes, c.rows(), c.cols(), kernel);
            w.matvec(x, 0, y, 0);
            float[] ym = new float[TOKENS * c.rows()];
            w.matmul(x, ym, TOKENS);
            System.arraycopy(ym, 0, y, c.rows(), ym.length);
        }
        return y;
    }

    static Map<String, float[]> serial(WeightKernel kernel, long seed) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Case c : cases()) {
            out.put(c.toString(), run(kernel, c, seed));
        }
        return out;
    }

    /**
     * The same as {@link #serial}, computed by {@value #TASKS} tasks (case {@code i} by task {@code
     * i mod 16}) on {@value #THREADS} threads.
     */
    static Map<String, float[]> parallel(WeightKernel kernel, long seed) throws Exception {
        List<Case> cases = cases();
        float[][] results = new float[cases.size()][];
        ExecutorService pool = Executors.newFixedThreadPool(THREADS);
        try {
            List<Future<?>> tasks = new ArrayList<>();
            for (int task = 0; task < TASKS; task++) {
                int first = task;
                tasks.add(pool.submit(() -> {
                    for (int i = first; i < cases.size(); i += TASKS) {
                        results[i] = run(kernel, cases.get(i), seed);
                    }
                }));
            }
            for (Future<?> f : tasks) {
                f.get();
            }
        } finally {
            pool.shutdown();
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Case c : cases) {
            out.put(c.toString(), results[c.index()]);
        }
        return out;
    }

    /** The active kernel and, if that is not it, the scalar twin. */
    static List<WeightKernel> kernels() {
        WeightKernel active = WeightKernels.get();
        return active == WeightKernels.scalar() ? List.of(active) : List.of(active, WeightKernels.scalar());
    }

    /**
     * Child JVM entry: {@code <file> <seed> serial|parallel}. Computes with the active kernel and
     * the scalar twin and writes {@code kernel:<name>} plus, per kernel, every result named {@code
     * <kernel>/<case>}.
     */
    public static void main(String[] args) throws Exception {
        Path file = Path.of(args[0]);
        long seed = Long.parseLong(args[1]);
        boolean parallel = switch (args[2]) {
            case "serial" -> false;
            case "parallel" -> true;
            default -> throw new IllegalArgumentException("mode must be serial or parallel, was " + args[2]);
        };
        Map<String, float[]> all = new LinkedHashMap<>();
        all.put("kernel:" + WeightKernels.activeName(), new float[0]);
        for (WeightKernel k : kernels()) {
            Map<String, float[]> results = parallel ? parallel(k, seed) : serial(k, seed);
            results.forEach((name, bits) -> all.put(k.name() + "/" + name, bits));
        }
        FreshJvm.writeBits(file, all);
        System.out.println("weight kernel " + WeightKernels.activeName() + " (" + WeightKernels.reason() + "), "
                + all.size() + " arrays");
    }
}
