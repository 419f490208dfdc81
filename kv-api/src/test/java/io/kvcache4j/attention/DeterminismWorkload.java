package io.kvcache4j.attention;

import io.kvcache4j.FreshJvm;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
 * A fixed set of attention computations whose results must have the same bits in every JVM, JIT
 * tier and thread: for every storage type, GQA group size, head dimension and token count of the
 * grid, one pass over pages of {@value #PAGE_TOKENS} tokens with the logit record on, then the
 * outputs, the log-sum-exp per head and the per-key mass of every aggregation, then the same pass
 * from the kernel's scores pushed block by block with its value step; plus dot products of
 * lengths that straddle vector widths and one {@link GroupAttention#pushLogits} sequence.
 *
 * <p>Each case draws its inputs from its own seed, so cases can run in any order and on any thread.
 * {@link #main} runs the grid in a child JVM: {@code serial} computes every case once, so each
 * result is the first call's; {@code parallel} spreads the cases over {@value #TASKS} tasks on
 * {@value #THREADS} threads, from a cold start.
 */
final class DeterminismWorkload {
    static final int[] GROUPS = {1, 2, 4, 8};
    static final int[] DIMS = {13, 48, 128};
    static final int[] TOKENS = {1, 15, 16, 17, 40};
    static final int[] DOT_LENGTHS = {1, 13, 16, 31, 32, 64, 65, 128, 207};
    static final int PAGE_TOKENS = 32;
    static final int TASKS = 16;
    static final int THREADS = 4;

    private DeterminismWorkload() {}

    /** One point of the grid. */
    record Case(int index, KvDType type, int group, int headDim, int tokens) {
        @Override
        public String toString() {
            return type + " group=" + group + " headDim=" + headDim + " tokens=" + tokens;
        }
    }

    static List<Case> cases() {
        List<Case> cases = new ArrayList<>();
        for (KvDType type : KvDType.values()) {
            for (int g : GROUPS) {
                for (int d : DIMS) {
                    for (int t : TOKENS) {
                        cases.add(new Case(cases.size(), type, g, d, t));
                    }
                }
            }
        }
        return cases;
    }

    /** The active kernel and, if that is not it, the scalar twin. */
    static List<AttentionKernel> kernels() {
        AttentionKernel active = AttentionKernels.get();
        return active == AttentionKernels.scalar() ? List.of(active) : List.of(active, AttentionKernels.scalar());
    }

    /** Every case in order, one array per case (plus the dot products and pushLogits as the last two). */
    static Map<String, float[]> serial(AttentionKernel kernel, long seed) {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (Case c : cases()) {
            out.put(c.toString(), run(kernel, c, seed));
        }
        out.put("dot", dots(kernel, seed));
        out.put("signs", signs(kernel, seed));
        out.put("pushLogits", pushLogits(seed));
        return out;
    }

    /**
     * The same as {@link #serial}, computed by {@value #TASKS} tasks (case {@code i} by task {@code
     * i mod 16}) on {@value #THREADS} threads.
     */
    static Map<String, float[]> parallel(AttentionKernel kernel, long seed) throws Exception {
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
        out.put("dot", dots(kernel, seed));
        out.put("signs", signs(kernel, seed));
        out.put("pushLogits", pushLogits(seed));
        return out;
    }

    /**
     * One grouped attention pass of {@code c.group()} query heads over {@code c.tokens()} stored
     * tokens in pages of {@value #PAGE_TOKENS}: outputs, then lse per head, then mass per
     * aggregation.
     */
    static float[] run(AttentionKernel kernel, Case c, long seed) {
        SplittableRandom r = new SplittableRandom(seed + 0x9E3779B97F4A7C15L * (c.index() + 1));
        final int d = c.headDim();
        final int g = c.group();
        final int tokens = c.tokens();
        final KvDType type = c.type();
        final int e = type.bytes();
        final long valueOffset = (long) d * PAGE_TOKENS * e;
        final long pageBytes = 2 * valueOffset;
        int pages = (tokens + PAGE_TOKENS - 1) / PAGE_TOKENS;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment[] page = new MemorySegment[pages];
            float[] row = new float[d];
            for (int p = 0; p < pages; p++) {
                page[p] = arena.allocate(pageBytes, 64);
                for (int j = 0; j < PAGE_TOKENS; j++) {
                    // the key dimension-major (stride PAGE_TOKENS), the value in column chunks
                    fill(r, row, 2f);
                    ScalarAttentionKernel.INSTANCE.encodeStrided(
                            row, 0, page[p], (long) j * e, (long) PAGE_TOKENS * e, type, d);
                    fill(r, row, 2f);
                    ValueChunks.encode(ScalarAttentionKernel.INSTANCE, row, 0, page[p], valueOffset, type, d, j);
                }
            }
            float[] q = new float[g * d];
            fill(r, q, 2f);
            GroupAttention st = new GroupAttention(g, d);
            st.begin(q, 0, (float) (1 / Math.sqrt(d)));
            st.recordLogits(tokens);
            for (int p = 0; p < pages; p++) {
                int rows = Math.min(PAGE_TOKENS, tokens - p * PAGE_TOKENS);
                kernel.scan(st, page[p], 0, PAGE_TOKENS, valueOffset, type, 0, rows, p * PAGE_TOKENS);
            }
            ScoreAggregation[] aggs = ScoreAggregation.values();
            float[] result = new float[g * d + g + aggs.length * tokens + g * d];
            st.finish(result, 0);
            for (int h = 0; h < g; h++) {
                result[g * d + h] = st.lse(h);
            }
            float[] mass = new float[tokens];
            for (int a = 0; a < aggs.length; a++) {
                kernel.mass(st, tokens, aggs[a], mass);
                System.arraycopy(mass, 0, result, g * d + g + a * tokens, tokens);
            }
            // the same pass again from the kernel's scores, pushed block by block, with its value step
            GroupAttention scored = new GroupAttention(g, d, kernel);
            scored.begin(q, 0, (float) (1 / Math.sqrt(d)));
            int block = GroupAttention.BLOCK;
            float[] logits = new float[g * PAGE_TOKENS];
            float[] blockLogits = new float[g * block];
            for (int p = 0; p < pages; p++) {
                int rows = Math.min(PAGE_TOKENS, tokens - p * PAGE_TOKENS);
                kernel.scores(scored, page[p], 0, PAGE_TOKENS, type, rows, logits, 0, PAGE_TOKENS);
                for (int r0 = 0; r0 < rows; r0 += block) {
                    int nb = Math.min(block, rows - r0);
                    for (int h = 0; h < g; h++) {
                        System.arraycopy(logits, h * PAGE_TOKENS + r0, blockLogits, h * block, nb);
                    }
                    scored.pushLogits(blockLogits, nb, p * PAGE_TOKENS + r0);
                    kernel.accumulateValues(scored, page[p], valueOffset, r0, type, nb);
                }
            }
            scored.finish(result, g * d + g + aggs.length * tokens);
            return result;
        }
    }

    static float[] dots(AttentionKernel kernel, long seed) {
        SplittableRandom r = new SplittableRandom(seed ^ 0xD07D07D07L);
        float[] out = new float[DOT_LENGTHS.length];
        for (int i = 0; i < DOT_LENGTHS.length; i++) {
            int n = DOT_LENGTHS[i];
            float[] a = new float[n + 3];
            float[] b = new float[n + 1];
            fill(r, a, 1f);
            fill(r, b, 1f);
            out[i] = ((VectorUtilSupport) kernel).dot(a, 3, b, 1, n);
        }
        return out;
    }

    /**
     * {@link VectorUtilSupport#projectSigns} of five vectors (one four-vector pass and one alone) on
     * 40 planes for each dot length, one float (0 or 1) per bit; the odd planes are orthogonal to
     * the first vector up to float rounding, so the summation order decides those signs.
     */
    static float[] signs(AttentionKernel kernel, long seed) {
        SplittableRandom r = new SplittableRandom(seed ^ 0x5165D07L);
        int rows = 40;
        int stride = 48;
        int count = 5;
        float[] out = new float[DOT_LENGTHS.length * rows * count];
        for (int i = 0; i < DOT_LENGTHS.length; i++) {
            int n = DOT_LENGTHS[i];
            float[] a = new float[rows * n];
            float[] x = new float[count * n + 1];
            fill(r, a, 1f);
            fill(r, x, 1f);
            for (int row = 1; row < rows; row += 2) {
                orthogonalize(a, row * n, x, 1, n);
            }
            float[] planes = new float[n * stride];
            for (int row = 0; row < rows; row++) {
                for (int e = 0; e < n; e++) {
                    planes[e * stride + row] = a[row * n + e];
                }
            }
            long[] words = new long[count];
            ((VectorUtilSupport) kernel).projectSigns(planes, rows, stride, x, 1, n, count, n, words, 0);
            for (int v = 0; v < count; v++) {
                for (int row = 0; row < rows; row++) {
                    out[(i * count + v) * rows + row] = (words[v] >>> row) & 1;
                }
            }
        }
        return out;
    }

    /**
     * Makes {@code a[aOff..aOff+n)} orthogonal to {@code b[bOff..bOff+n)} in float64, then rounds it
     * to float: its float dot with {@code b} is then a few rounding errors, whose sign depends on
     * the order of the sum.
     */
    static void orthogonalize(float[] a, int aOff, float[] b, int bOff, int n) {
        double ab = 0;
        double bb = 0;
        for (int e = 0; e < n; e++) {
            ab += (double) a[aOff + e] * b[bOff + e];
            bb += (double) b[bOff + e] * b[bOff + e];
        }
        for (int e = 0; e < n; e++) {
            a[aOff + e] = (float) (a[aOff + e] - ab / bb * b[bOff + e]);
        }
    }

    /**
     * Three blocks of externally computed logits for two heads through {@link
     * GroupAttention#pushLogits}: the weights, then the lse.
     */
    static float[] pushLogits(long seed) {
        SplittableRandom r = new SplittableRandom(seed ^ 0x9057L);
        int g = 2;
        int d = 8;
        GroupAttention st = new GroupAttention(g, d);
        float[] q = new float[g * d];
        st.begin(q, 0, 1f);
        float[] logits = new float[g * GroupAttention.BLOCK];
        int[] nbs = {16, 7, 16};
        float[] out = new float[nbs.length * g * GroupAttention.BLOCK + g];
        for (int b = 0; b < nbs.length; b++) {
            fill(r, logits, 8f);
            st.pushLogits(logits, nbs[b], b * GroupAttention.BLOCK);
            System.arraycopy(logits, 0, out, b * logits.length, logits.length);
        }
        st.finish(new float[g * d], 0);
        for (int h = 0; h < g; h++) {
            out[nbs.length * logits.length + h] = st.lse(h);
        }
        return out;
    }

    private static void fill(SplittableRandom r, float[] a, float scale) {
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
    }

    /**
     * Child JVM entry: {@code <file> <seed> serial|parallel}. Computes with the active kernel and
     * the scalar twin and writes {@code kernel:<name>} plus, per kernel, every result array named
     * {@code <kernel>/<case>}.
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
        AttentionKernel active = AttentionKernels.get();
        all.put("kernel:" + active.name(), new float[0]);
        for (AttentionKernel k : kernels()) {
            Map<String, float[]> results = parallel ? parallel(k, seed) : serial(k, seed);
            for (Map.Entry<String, float[]> e : results.entrySet()) {
                all.put(k.name() + "/" + e.getKey(), e.getValue());
            }
        }
        FreshJvm.writeBits(file, all);
        System.out.println(
                "kernel " + active.name() + " (" + AttentionKernels.reason() + "), " + all.size() + " arrays");
    }
}
