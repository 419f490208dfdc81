package io.kvcache4j.attention;

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
     * {@code atLeast} marks exactly the elements {@code >= threshold}: values equal to the threshold,
     * its neighbours one ulp away, ±0, infinities and NaN included, for lengths around the word and
     * vector sizes; the words it writes carry no bits past the length.
     */
    @ParameterizedTest
    @MethodSource("kernels")
    void atLeastMarksExactlyTheElementsAtOrAboveTheThreshold(AttentionKernel kernel) {
        long seed = TestSeeds.seed("at-least-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        VectorUtilSupport util = (VectorUtilSupport) kernel;
        float[] specials = {0f, -0f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE};
        for (float threshold : new float[] {1f / 2048, 0f, -0f, -0.25f, Float.MIN_VALUE, 3f}) {
            for (int n : new int[] {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 200, 2079}) {
                float[] a = new float[n + 7];
                for (int i = 0; i < a.length; i++) {
                    a[i] = switch (r.nextInt(5)) {
                        case 0 -> threshold;
                        case 1 -> Math.nextUp(threshold);
                        case 2 -> Math.nextDown(threshold);
                        case 3 -> specials[r.nextInt(specials.length)];
                        default -> (float) (r.nextGaussian() * Math.max(1e-3, Math.abs(threshold)));
                    };
                }
                int words = (n + 63) >>> 6;
                long[] bits = new long[words + 1];
                java.util.Arrays.fill(bits, -1L);
                util.atLeast(a, 7, n, threshold, bits);
                for (int w = 0; w < words; w++) {
                    long expected = 0;
                    for (int i = w * 64; i < Math.min(n, w * 64 + 64); i++) {
                        if (a[7 + i] >= threshold) {
                            expected |= 1L << i;
                        }
                    }
                    assertEquals(
                            expected, bits[w], "threshold " + threshold + " n=" + n + " word " + w + " seed=" + seed);
                }
                assertEquals(-1L, bits[words], "wrote past word " + words);
            }
        }
    }

    /** Each bit of {@code signs} is the sign of the kernel's own {@code dot} of that row, to the bit. */
    @ParameterizedTest
    @MethodSource("kernels")
    void signsAreTheSignsOfDot(AttentionKernel kernel) {
        long seed = TestSeeds.seed("signs-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        VectorUtilSupport util = (VectorUtilSupport) kernel;
        for (int n : new int[] {1, 7, 16, 31, 32, 33, 64, 100, 128, 207}) {
            for (int rows : new int[] {0, 1, 5, 32, 63, 64}) {
                float[] a = TestSeeds.floats(r, rows * n + 3, 1f);
                float[] b = TestSeeds.floats(r, n + 5, 1f);
                // every third row made orthogonal to b in float64, so that rounding decides its sign
                for (int row = 0; row < rows; row += 3) {
                    DeterminismWorkload.orthogonalize(a, 3 + row * n, b, 5, n);
                }
                long expected = 0;
                for (int row = 0; row < rows; row++) {
                    if (util.dot(a, 3 + row * n, b, 5, n) >= 0f) {
                        expected |= 1L << row;
                    }
                }
                assertEquals(expected, util.signs(a, 3, rows, b, 5, n), "n=" + n + " rows=" + rows + " seed=" + seed);
            }
        }
        float[] a = new float[65];
        assertThrows(IllegalArgumentException.class, () -> util.signs(a, 0, 65, a, 0, 1));
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
}
