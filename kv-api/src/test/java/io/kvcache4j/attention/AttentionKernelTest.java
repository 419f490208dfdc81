package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.store.NativeMemory;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Differential tests: the active kernel and the scalar twin, each against a float64 reference over
 * the stored (rounded) values, on sizes that straddle vector widths (Lucene's list).
 */
class AttentionKernelTest {
    static final int[] DIMS = {1, 4, 6, 8, 13, 16, 25, 32, 64, 100, 128, 207};
    static final int[] TOKENS = {1, 15, 16, 17, 100, 300};
    static final double TOLERANCE = 1e-5;

    static Stream<AttentionKernel> kernels() {
        return Stream.of(AttentionKernels.get(), AttentionKernels.scalar()).distinct();
    }

    static Stream<Arguments> kernelsAndTypes() {
        List<Arguments> list = new ArrayList<>();
        kernels().forEach(k -> {
            for (KvDType t : KvDType.values()) {
                list.add(Arguments.of(k, t));
            }
        });
        return list.stream();
    }

    @ParameterizedTest
    @MethodSource("kernelsAndTypes")
    void scoresMatchFloat64AndTouchOnlyTheirRows(AttentionKernel kernel, KvDType type) {
        long seed = TestSeeds.seed("scores-" + kernel.name() + "-" + type);
        SplittableRandom r = TestSeeds.random(seed);
        ConversionSupport conv = (ConversionSupport) kernel;
        int e = type.bytes();
        for (int group : new int[] {1, 2, 4, 8}) {
            for (int d : new int[] {8, 13, 32, 128}) {
                for (int rows : new int[] {1, 15, 16, 17, 48}) {
                    int keyStride = ((rows + 15) / 16) * 16 + 16;
                    long keyOffset = 64;
                    MemorySegment page = MemorySegment.ofArray(new byte[(int) (keyOffset + (long) d * keyStride * e)]);
                    float[] dim = new float[keyStride];
                    for (int i = 0; i < d; i++) {
                        for (int j = 0; j < keyStride; j++) {
                            dim[j] = (float) (r.nextDouble() * 2 - 1);
                        }
                        conv.encode(dim, 0, page, keyOffset + (long) i * keyStride * e, type, keyStride);
                    }
                    float[] queries = TestSeeds.floats(r, group * d, 2f);
                    GroupAttention st = new GroupAttention(group, d, kernel);
                    float scale = 0.7f;
                    st.begin(queries, 0, scale);
                    int outStride = rows + 9;
                    int outOffset = 4;
                    float[] out = new float[group * outStride + outOffset];
                    java.util.Arrays.fill(out, Float.NaN);
                    kernel.scores(st, page, keyOffset, keyStride, type, rows, out, outOffset, outStride);
                    float[] key = new float[1];
                    for (int h = 0; h < group; h++) {
                        for (int j = 0; j < rows; j++) {
                            double ref = 0;
                            double mag = 0;
                            for (int i = 0; i < d; i++) {
                                conv.decode(page, keyOffset + ((long) i * keyStride + j) * e, type, key, 0, 1);
                                double term = (double) (queries[h * d + i] * scale) * key[0];
                                ref += term;
                                mag += Math.abs(term);
                            }
                            float got = out[h * outStride + outOffset + j];
                            assertTrue(
                                    Math.abs(got - ref) <= 1e-6 * mag + 1e-30,
                                    "group " + group + " d " + d + " rows " + rows + " head " + h + " row " + j
                                            + ": got " + got + " ref " + ref + " seed=" + seed);
                        }
                    }
                    for (int i = 0; i < out.length; i++) {
                        int h = (i - outOffset) / outStride;
                        int j = (i - outOffset) - h * outStride;
                        boolean written = i >= outOffset && h < group && j < rows;
                        assertEquals(!written, Float.isNaN(out[i]), "element " + i + " written: " + written);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("kernels")
    void dotMatchesFloat64(AttentionKernel kernel) {
        long seed = TestSeeds.seed("dot-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        for (int n : new int[] {1, 4, 6, 8, 13, 16, 25, 32, 64, 100, 128, 207, 256, 300, 512, 702, 1024}) {
            float[] a = TestSeeds.floats(r, n + 3, 1f);
            float[] b = TestSeeds.floats(r, n + 5, 1f);
            double ref = 0;
            double mag = 0;
            for (int i = 0; i < n; i++) {
                ref += (double) a[i + 3] * b[i + 5];
                mag += Math.abs((double) a[i + 3] * b[i + 5]);
            }
            float got = ((VectorUtilSupport) kernel).dot(a, 3, b, 5, n);
            assertTrue(
                    Math.abs(got - ref) <= 1e-6 * mag + 1e-30,
                    "n=" + n + " got " + got + " ref " + ref + " seed=" + seed);
        }
    }

    /**
     * {@code recurrences} updates exactly the slots whose mass is {@code >= threshold} (values equal
     * to the threshold, its neighbours one ulp away, ±0, infinities and NaN included), each to the
     * state the rule gives, computed here in plain long arithmetic, and leaves every other slot and
     * everything past {@code n} alone; lengths around the vector sizes; bad arguments are rejected.
     */
    @ParameterizedTest
    @MethodSource("kernels")
    void recurrencesUpdateExactlyTheSlotsAtOrAboveTheThreshold(AttentionKernel kernel) {
        long seed = TestSeeds.seed("recurrences-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        VectorUtilSupport util = (VectorUtilSupport) kernel;
        float[] specials = {0f, -0f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE};
        for (float threshold : new float[] {1f / 2048, 0f, -0f, -0.25f, Float.MIN_VALUE, 3f}) {
            for (int n : new int[] {0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 200, 2079}) {
                float[] mass = new float[n + 7];
                for (int i = 0; i < mass.length; i++) {
                    mass[i] = switch (r.nextInt(5)) {
                        case 0 -> threshold;
                        case 1 -> Math.nextUp(threshold);
                        case 2 -> Math.nextDown(threshold);
                        case 3 -> specials[r.nextInt(specials.length)];
                        default -> (float) (r.nextGaussian() * Math.max(1e-3, Math.abs(threshold)));
                    };
                }
                int position = r.nextInt(Integer.MAX_VALUE);
                long[] state = new long[n + 7];
                for (int i = 0; i < state.length; i++) {
                    int last = r.nextInt(2) == 0 ? position : r.nextInt(position + 1);
                    int interval = r.nextInt(4) == 0 ? Integer.MAX_VALUE : r.nextInt(position + 1);
                    state[i] = (long) last << 32 | interval;
                }
                long[] before = state.clone();
                util.recurrences(mass, n, threshold, state, position);
                for (int i = 0; i < state.length; i++) {
                    long expected = before[i];
                    if (i < n && mass[i] >= threshold) {
                        long last = before[i] >>> 32;
                        long interval = before[i] & 0xFFFFFFFFL;
                        expected = (long) position << 32 | Math.max(interval, position - last);
                    }
                    assertEquals(
                            expected,
                            state[i],
                            "threshold " + threshold + " n=" + n + " slot " + i + " mass " + mass[i] + " seed=" + seed);
                }
            }
        }
        float[] mass = new float[8];
        long[] state = new long[4];
        assertThrows(IllegalArgumentException.class, () -> util.recurrences(mass, 5, 0f, state, 0));
        assertThrows(IllegalArgumentException.class, () -> util.recurrences(mass, -1, 0f, state, 0));
        assertThrows(IllegalArgumentException.class, () -> util.recurrences(mass, 4, 0f, state, -1));
    }

    /**
     * {@code projectSigns}: the same bits as the scalar twin for every vector count (the four-vector
     * pass and the rest), width and length; each bit the sign of the float64 projection wherever
     * that is not within rounding of 0 (a third of the vectors are made orthogonal to a plane, so
     * that rounding decides); no bits at or above {@code bits}; nothing written outside {@code out}'s
     * range; bad arguments rejected.
     */
    @ParameterizedTest
    @MethodSource("kernels")
    void projectSignsAreTheSignsOfTheProjections(AttentionKernel kernel) {
        long seed = TestSeeds.seed("project-signs-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        VectorUtilSupport util = (VectorUtilSupport) kernel;
        VectorUtilSupport scalar = (VectorUtilSupport) AttentionKernels.scalar();
        for (int n : new int[] {0, 1, 7, 16, 33, 128, 207}) {
            for (int bits : new int[] {1, 15, 16, 17, 32, 33, 63, 64}) {
                int stride = (bits + 15) & ~15;
                float[] planes = new float[n * stride];
                for (int i = 0; i < n; i++) {
                    for (int p = 0; p < bits; p++) {
                        planes[i * stride + p] = (float) r.nextGaussian();
                    }
                }
                for (int count : new int[] {0, 1, 3, 4, 5, 9}) {
                    int xStride = n + 2;
                    float[] x = TestSeeds.floats(r, 3 + count * xStride, 1f);
                    float[] plane0 = new float[n];
                    for (int i = 0; i < n; i++) {
                        plane0[i] = planes[i * stride];
                    }
                    for (int v = 0; v < count; v += 3) {
                        DeterminismWorkload.orthogonalize(x, 3 + v * xStride, plane0, 0, n);
                    }
                    long[] got = new long[count + 2];
                    long[] twin = new long[count + 2];
                    java.util.Arrays.fill(got, 0x5A5A5A5A5A5A5A5AL);
                    util.projectSigns(planes, bits, stride, x, 3, xStride, count, n, got, 1);
                    scalar.projectSigns(planes, bits, stride, x, 3, xStride, count, n, twin, 1);
                    String where = "n=" + n + " bits=" + bits + " count=" + count + " seed=" + seed;
                    assertEquals(0x5A5A5A5A5A5A5A5AL, got[0], "wrote before out's range, " + where);
                    assertEquals(0x5A5A5A5A5A5A5A5AL, got[count + 1], "wrote past out's range, " + where);
                    for (int v = 0; v < count; v++) {
                        assertEquals(twin[1 + v], got[1 + v], "vector " + v + " vs the scalar twin, " + where);
                        if (bits < 64) {
                            assertEquals(0, got[1 + v] >>> bits, "bits above " + bits + ", " + where);
                        }
                        for (int p = 0; p < bits; p++) {
                            double dot = 0;
                            double mag = 0;
                            for (int i = 0; i < n; i++) {
                                double t = (double) x[3 + v * xStride + i] * planes[i * stride + p];
                                dot += t;
                                mag += Math.abs(t);
                            }
                            if (Math.abs(dot) > 1e-5 * mag) {
                                assertEquals(
                                        dot >= 0,
                                        (got[1 + v] >>> p & 1) != 0,
                                        "plane " + p + " vector " + v + ", " + where);
                            }
                        }
                    }
                }
            }
        }
        float[] planes = new float[16 * 4];
        float[] x = new float[8];
        long[] out = new long[2];
        assertThrows(IllegalArgumentException.class, () -> util.projectSigns(planes, 65, 80, x, 0, 4, 1, 4, out, 0));
        assertThrows(IllegalArgumentException.class, () -> util.projectSigns(planes, 8, 8, x, 0, 4, 1, 4, out, 0));
        assertThrows(IllegalArgumentException.class, () -> util.projectSigns(planes, 8, 16, x, 0, 4, 3, 4, out, 0));
        assertThrows(IllegalArgumentException.class, () -> util.projectSigns(planes, 8, 16, x, 0, 4, 2, 5, out, 0));
        assertThrows(IllegalArgumentException.class, () -> util.projectSigns(planes, 8, 16, x, 0, 4, 2, 4, out, 1));
    }

    /**
     * {@code hammingStep}: every slot's new loss and the returned slot equal plain arithmetic (the
     * lowest slot of the largest loss among the candidates whose position lies in {@code [lo, hi)}),
     * for pairs and singles of query words, accumulating or not, lengths around the vector sizes,
     * losses drawn from a narrow range so that ties are common, no candidate at all, and bad
     * arguments rejected.
     */
    @ParameterizedTest
    @MethodSource("kernels")
    void hammingStepScoresAndFindsTheWorstUnprotectedSlot(AttentionKernel kernel) {
        long seed = TestSeeds.seed("hamming-step-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        VectorUtilSupport util = (VectorUtilSupport) kernel;
        int[][] shapes = {{0, 1}, {1, 0}, {2, 0}, {1, 1}, {0, 4}, {3, 2}};
        for (int n : new int[] {0, 1, 7, 8, 9, 16, 17, 63, 200, 2049}) {
            for (int[] shape : shapes) {
                for (boolean accumulate : new boolean[] {true, false}) {
                    int pairs = shape[0];
                    int singles = shape[1];
                    long[] words = new long[pairs + singles + 1];
                    for (int w = 0; w < words.length; w++) {
                        words[w] = w < pairs ? r.nextLong() : r.nextLong() & 0xFFFFFFFFL;
                    }
                    long[] sig = new long[n + 3];
                    long[] loss = new long[n + 3];
                    long[] pos = new long[n + 3];
                    for (int i = 0; i < sig.length; i++) {
                        sig[i] = r.nextLong() & 0xFFFFFFFFL;
                        loss[i] = r.nextInt(4) == 0 ? 0 : r.nextInt(20);
                        pos[i] = r.nextInt(2 * n + 10);
                    }
                    int candidates = n == 0 ? 0 : n - r.nextInt(Math.min(n, 3));
                    long lo = r.nextInt(5);
                    long hi = r.nextInt(4) == 0 ? lo : lo + r.nextInt(2 * n + 10);
                    long[] wantLoss = loss.clone();
                    int want = -1;
                    for (int s = 0; s < n; s++) {
                        long hd = 0;
                        for (int w = 0; w < pairs; w++) {
                            hd += Long.bitCount(words[w] ^ (sig[s] | sig[s] << 32));
                        }
                        for (int w = pairs; w < pairs + singles; w++) {
                            hd += Long.bitCount(words[w] ^ sig[s]);
                        }
                        wantLoss[s] = accumulate ? loss[s] + hd : hd;
                        if (s < candidates
                                && pos[s] >= lo
                                && pos[s] < hi
                                && (want < 0 || wantLoss[s] > wantLoss[want])) {
                            want = s;
                        }
                    }
                    int got =
                            util.hammingStep(sig, loss, n, words, pairs, singles, accumulate, pos, candidates, lo, hi);
                    String where = "n=" + n + " pairs=" + pairs + " singles=" + singles + " accumulate=" + accumulate
                            + " candidates=" + candidates + " [" + lo + ", " + hi + ") seed=" + seed;
                    assertEquals(want, got, "slot, " + where);
                    assertArrayEquals(wantLoss, loss, "losses, " + where);
                }
            }
        }
        long[] a = new long[8];
        assertThrows(IllegalArgumentException.class, () -> util.hammingStep(a, a, 9, a, 1, 0, true, a, 4, 0, 9));
        assertThrows(IllegalArgumentException.class, () -> util.hammingStep(a, a, 4, a, 1, 0, true, a, 5, 0, 9));
        assertThrows(IllegalArgumentException.class, () -> util.hammingStep(a, a, 4, a, 5, 4, true, a, 4, 0, 9));
        assertThrows(IllegalArgumentException.class, () -> util.hammingStep(a, a, 4, a, -1, 0, true, a, 4, 0, 9));
    }

    @ParameterizedTest
    @MethodSource("kernels")
    void halfPrecisionDecodeIsExactForEveryFiniteBitPattern(AttentionKernel kernel) {
        MemorySegment seg = NativeMemory.allocate(2 * 65536);
        try {
            for (int i = 0; i < 65536; i++) {
                seg.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, 2L * i, (short) i);
            }
            float[] f16 = new float[65536];
            float[] bf16 = new float[65536];
            ((ConversionSupport) kernel).decode(seg, 0, KvDType.F16, f16, 0, 65536);
            ((ConversionSupport) kernel).decode(seg, 0, KvDType.BF16, bf16, 0, 65536);
            for (int i = 0; i < 65536; i++) {
                float want = Float.float16ToFloat((short) i);
                if (Float.isFinite(want)) {
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(f16[i]), "f16 bits " + i);
                }
                float wantBf = KvDType.bf16BitsToFloat((short) i);
                if (Float.isFinite(wantBf)) {
                    assertEquals(Float.floatToRawIntBits(wantBf), Float.floatToRawIntBits(bf16[i]), "bf16 bits " + i);
                }
            }
        } finally {
            NativeMemory.free(seg);
        }
    }

    @ParameterizedTest
    @MethodSource("kernelsAndTypes")
    void groupedAttentionMatchesFloat64(AttentionKernel kernel, KvDType type) {
        long seed = TestSeeds.seed("attend-" + kernel.name() + "-" + type);
        SplittableRandom r = TestSeeds.random(seed);
        for (int d : DIMS) {
            for (int tokens : TOKENS) {
                int kvHeads = 1 + r.nextInt(2);
                int group = new int[] {1, 2, 3, 4}[r.nextInt(4)];
                int pageTokens = new int[] {16, 32, 64, 256}[r.nextInt(4)];
                ModelShape shape = new ModelShape(1, kvHeads * group, kvHeads, d);
                try (KvCache cache = KvCache.builder(shape)
                        .dtype(type)
                        .kernel(kernel)
                        .pageTokens(pageTokens)
                        .build()) {
                    float[] k = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 2f);
                    float[] v = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 2f);
                    float[] q = TestSeeds.floats(r, shape.queryRowFloats(), 2f);
                    cache.append(0, k, 0, v, 0, tokens);
                    // Attend all but the last token as a prefill, then the last one as a decode step.
                    float[] prefillOut = new float[tokens * shape.queryRowFloats()];
                    float[] qs = TestSeeds.floats(r, tokens * shape.queryRowFloats(), 2f);
                    System.arraycopy(q, 0, qs, (tokens - 1) * shape.queryRowFloats(), q.length);
                    cache.attend(0, qs, 0, tokens, prefillOut, 0);
                    for (int t = 0; t < tokens; t += Math.max(1, tokens / 5)) {
                        checkToken(
                                cache,
                                shape,
                                qs,
                                prefillOut,
                                t,
                                d,
                                "d=" + d + " tokens=" + tokens + " group=" + group + " page=" + pageTokens + " t=" + t
                                        + " seed=" + seed);
                    }
                    checkToken(cache, shape, qs, prefillOut, tokens - 1, d, "last, d=" + d + " seed=" + seed);
                }
            }
        }
    }

    private static void checkToken(KvCache cache, ModelShape shape, float[] qs, float[] out, int t, int d, String msg) {
        int qRow = shape.queryRowFloats();
        for (int qh = 0; qh < shape.queryHeads(); qh++) {
            int kvh = qh / shape.groupSize();
            ReferenceAttention ref = ReferenceAttention.of(qs, t * qRow + qh * d, cache.view(0, kvh), t + 1, d);
            double err = ref.relativeError(out, t * qRow + qh * d);
            assertTrue(err <= TOLERANCE, "relative error " + err + " > " + TOLERANCE + " at head " + qh + ", " + msg);
        }
    }

    @ParameterizedTest
    @MethodSource("kernelsAndTypes")
    void fusedMassMatchesReferenceSoftmax(AttentionKernel kernel, KvDType type) {
        long seed = TestSeeds.seed("mass-" + kernel.name() + "-" + type);
        SplittableRandom r = TestSeeds.random(seed);
        int d = 32;
        int group = 4;
        for (int tokens : new int[] {1, 16, 17, 250}) {
            try (PagedHeadStore store = new PagedHeadStore(type, d, 16, kernel)) {
                for (int t = 0; t < tokens; t++) {
                    store.append(TestSeeds.floats(r, d, 2f), 0, TestSeeds.floats(r, d, 2f), 0, d, 1);
                }
                float[] q = TestSeeds.floats(r, group * d, 2f);
                GroupAttention st = new GroupAttention(group, d);
                for (ScoreAggregation agg : ScoreAggregation.values()) {
                    st.begin(q, 0, (float) (1 / Math.sqrt(d)));
                    st.recordLogits(tokens);
                    store.attend(st, new SlotSelection().prefix(tokens));
                    Partial p = new Partial(group, d);
                    st.finish(p, 0);
                    float[] mass = new float[tokens];
                    kernel.mass(st, tokens, agg, mass);
                    double[] want = new double[tokens];
                    for (int h = 0; h < group; h++) {
                        ReferenceAttention ref = ReferenceAttention.of(q, h * d, store, tokens, d);
                        assertEquals(ref.lse, p.lse()[h], 1e-5 * Math.max(1, Math.abs(ref.lse)), "lse seed=" + seed);
                        for (int j = 0; j < tokens; j++) {
                            want[j] = agg == ScoreAggregation.MAX
                                    ? Math.max(want[j], ref.probs[j])
                                    : want[j] + ref.probs[j];
                        }
                    }
                    double total = 0;
                    for (int j = 0; j < tokens; j++) {
                        double w = agg == ScoreAggregation.MEAN ? want[j] / group : want[j];
                        assertEquals(w, mass[j], 1e-5 * Math.max(w, 1e-3), agg + " slot " + j + " seed=" + seed);
                        total += mass[j];
                    }
                    if (agg == ScoreAggregation.SUM) {
                        assertEquals(group, total, 1e-4, "sum of mass over slots = group size, seed=" + seed);
                    }
                }
            }
        }
    }

    /**
     * Mass over blocks of every length at any slot (page and selection edges give such blocks) and
     * a gap no block recorded: within float rounding of float64 softmax over the logits pushed,
     * exactly 0 in the gap and past the last block, and the same bits from both kernels.
     */
    @ParameterizedTest
    @MethodSource("kernels")
    void massOfIrregularBlocksMatchesFloat64AndZeroesUnrecordedSlots(AttentionKernel kernel) {
        long seed = TestSeeds.seed("mass-blocks-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        int group = 4;
        int d = 16;
        int block = GroupAttention.BLOCK;
        // [first slot, length] of each pushed block; slots 45..49 are a gap, 120..127 never pushed
        int[][] blocks = {
            {0, 5}, {5, 16}, {21, 16}, {37, 3}, {40, 5}, {50, 16}, {66, 16}, {82, 1}, {83, 16}, {99, 16}, {115, 5}
        };
        int slots = 128;
        for (ScoreAggregation agg : ScoreAggregation.values()) {
            float[][] masses = new float[2][];
            double[][] logits = new double[group][slots];
            for (double[] row : logits) {
                java.util.Arrays.fill(row, Double.NaN);
            }
            AttentionKernel[] pair = {kernel, AttentionKernels.scalar()};
            long runSeed = r.nextLong();
            for (int k = 0; k < 2; k++) {
                SplittableRandom rr = new SplittableRandom(runSeed);
                GroupAttention st = new GroupAttention(group, d, pair[k]);
                st.begin(new float[group * d], 0, 1f);
                st.recordLogits(slots);
                float[] blockLogits = new float[group * block];
                for (int[] b : blocks) {
                    for (int h = 0; h < group; h++) {
                        for (int j = 0; j < b[1]; j++) {
                            // a rising trend, so that the running maximum moves between blocks
                            float s = (float) (rr.nextGaussian() * 3 + b[0] / 20.0);
                            blockLogits[h * block + j] = s;
                            logits[h][b[0] + j] = s;
                        }
                    }
                    st.pushLogits(blockLogits, b[1], b[0]);
                }
                st.finish(new float[group * d], 0);
                masses[k] = new float[slots];
                java.util.Arrays.fill(masses[k], Float.NaN);
                pair[k].mass(st, slots, agg, masses[k]);
            }
            for (int j = 0; j < slots; j++) {
                assertEquals(
                        Float.floatToRawIntBits(masses[1][j]),
                        Float.floatToRawIntBits(masses[0][j]),
                        agg + " slot " + j + ": " + kernel.name() + " vs scalar, seed=" + seed);
            }
            double[] want = new double[slots];
            for (int h = 0; h < group; h++) {
                double max = Double.NEGATIVE_INFINITY;
                for (double x : logits[h]) {
                    if (!Double.isNaN(x)) {
                        max = Math.max(max, x);
                    }
                }
                double sum = 0;
                for (double x : logits[h]) {
                    if (!Double.isNaN(x)) {
                        sum += Math.exp(x - max);
                    }
                }
                for (int j = 0; j < slots; j++) {
                    double p = Double.isNaN(logits[h][j]) ? 0 : Math.exp(logits[h][j] - max) / sum;
                    want[j] = agg == ScoreAggregation.MAX ? Math.max(want[j], p) : want[j] + p;
                }
            }
            for (int j = 0; j < slots; j++) {
                double w = agg == ScoreAggregation.MEAN ? want[j] / group : want[j];
                if (w == 0) {
                    assertEquals(0f, masses[0][j], agg + " unrecorded slot " + j + " seed=" + seed);
                } else {
                    assertEquals(w, masses[0][j], 1e-5 * w, agg + " slot " + j + " seed=" + seed);
                }
            }
        }
    }
}
