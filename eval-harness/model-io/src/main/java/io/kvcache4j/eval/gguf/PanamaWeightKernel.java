package io.kvcache4j.eval.gguf;

import static io.kvcache4j.eval.gguf.GgmlQuants.LE_SHORT;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API implementation of {@link WeightKernel} at the platform's preferred float width, which
 * must be 8 or 16 lanes (AVX2, AVX-512; other widths fall back to the scalar twin).
 *
 * <p>Quantized codes are loaded straight from the mapped segment as {@code L} bytes, unpacked with
 * byte-lane masks and shifts (nibbles, 2-bit high parts), widened to floats in registers and
 * multiplied with the matching {@code x} lanes; the block scale is applied once per block with one
 * fused multiply-add into a vector accumulator, and lanes are reduced once per row. Half-precision
 * weights are widened by the exponent-rebias trick ({@code (h & 0x7fff) << 13} as float times
 * 2<sup>112</sup>, exact for normal and subnormal values), with infinities and NaNs blended in, so
 * both twins agree on every bit pattern. Bit operations on codes run on int lanes, where they are
 * native, and loops iterate over sub-blocks instead of repeating code so that each method stays
 * small enough for C2 to inline every vector operation (a method over C2's inlining budget keeps
 * vectors boxed and runs several times slower).
 *
 * <p>Loaded reflectively by {@link WeightKernels} only when {@code jdk.incubator.vector} is in the
 * boot layer.
 */
final class PanamaWeightKernel implements WeightKernel {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    private static final VectorSpecies<Short> S =
            L >= 4 ? VectorSpecies.of(short.class, VectorShape.forBitSize(L * 16)) : null;
    private static final VectorSpecies<Byte> B =
            L >= 8 ? VectorSpecies.of(byte.class, VectorShape.forBitSize(L * 8)) : null;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    // The butterfly of sum(): the first step at the preferred width, the others on its lower half
    // and quarter.
    private static final VectorSpecies<Float> F256 = FloatVector.SPECIES_256;
    private static final VectorSpecies<Float> F128 = FloatVector.SPECIES_128;
    private static final VectorShuffle<Float> SWAP8 = L >= 16 ? VectorShuffle.fromOp(F, i -> i ^ 8) : null;
    private static final VectorShuffle<Float> SWAP4 = VectorShuffle.fromOp(F256, i -> i ^ 4);
    private static final VectorShuffle<Float> SWAP2 = VectorShuffle.fromOp(F128, i -> i ^ 2);
    private static final VectorShuffle<Float> SWAP1 = VectorShuffle.fromOp(F128, i -> i ^ 1);
    private static final float TWO_POW_112 = 0x1.0p112f;

    PanamaWeightKernel() {
        if (L != 8 && L != 16) {
            throw new UnsupportedOperationException("preferred float vector has " + L + " lanes; need 8 or 16");
        }
    }

    @Override
    public String name() {
        return "panama";
    }

    @Override
    public float dot(GgmlType type, MemorySegment w, long offset, float[] x, int xOff, int n) {
        return switch (type) {
            case F32 -> dotF32(w, offset, x, xOff, n);
            case F16 -> dotF16(w, offset, x, xOff, n);
            case BF16 -> dotBf16(w, offset, x, xOff, n);
            case Q8_0 -> dotQ8_0(w, offset, x, xOff, n);
            case Q4_0 -> dotQ4_0(w, offset, x, xOff, n);
            case Q4_K -> dotQ4K(w, offset, x, xOff, n);
            case Q6_K -> dotQ6K(w, offset, x, xOff, n);
            default -> throw new UnsupportedOperationException("no kernel for " + type);
        };
    }

    /**
     * The sum of the lanes in one fixed order (pairwise by butterfly). {@code reduceLanes(ADD)} may
     * add in a different order when compiled by C2 than when interpreted, which would make the same
     * row's product differ in the last bit between early and later calls. After the first step only
     * the lower half is live, so the later steps run on 256- and 128-bit vectors, whose shuffles cost
     * less than full-width ones, with the full-width butterfly's sums.
     */
    static float sum(FloatVector v) {
        FloatVector w = v;
        if (L == 16) {
            w = (FloatVector) w.add(w.rearrange(SWAP8)).reinterpretShape(F256, 0);
        }
        if (L >= 8) {
            w = (FloatVector) w.add(w.rearrange(SWAP4)).reinterpretShape(F128, 0);
        }
        w = w.add(w.rearrange(SWAP2));
        return w.add(w.rearrange(SWAP1)).lane(0);
    }

    private static float dotF32(MemorySegment w, long offset, float[] x, int xOff, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        int i = 0;
        for (int bound = n - 4 * L; i <= bound; i += 4 * L) {
            long at = offset + 4L * i;
            a0 = FloatVector.fromMemorySegment(F, w, at, LE).fma(FloatVector.fromArray(F, x, xOff + i), a0);
            a1 = FloatVector.fromMemorySegment(F, w, at + 4L * L, LE)
                    .fma(FloatVector.fromArray(F, x, xOff + i + L), a1);
            a2 = FloatVector.fromMemorySegment(F, w, at + 8L * L, LE)
                    .fma(FloatVector.fromArray(F, x, xOff + i + 2 * L), a2);
            a3 = FloatVector.fromMemorySegment(F, w, at + 12L * L, LE)
                    .fma(FloatVector.fromArray(F, x, xOff + i + 3 * L), a3);
        }
        for (int bound = n - L; i <= bound; i += L) {
            a0 = FloatVector.fromMemorySegment(F, w, offset + 4L * i, LE)
                    .fma(FloatVector.fromArray(F, x, xOff + i), a0);
        }
        float s = sum(a0.add(a1).add(a2.add(a3)));
        if (i < n) {
            s += ScalarWeightKernel.dotF32(w, offset + 4L * i, x, xOff + i, n - i);
        }
        return s;
    }

    private static float dotF16(MemorySegment w, long offset, float[] x, int xOff, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (int bound = n - 2 * L; i <= bound; i += 2 * L) {
            a0 = half(w, offset + 2L * i).fma(FloatVector.fromArray(F, x, xOff + i), a0);
            a1 = half(w, offset + 2L * (i + L)).fma(FloatVector.fromArray(F, x, xOff + i + L), a1);
        }
        for (int bound = n - L; i <= bound; i += L) {
            a0 = half(w, offset + 2L * i).fma(FloatVector.fromArray(F, x, xOff + i), a0);
        }
        float s = sum(a0.add(a1));
        if (i < n) {
            s += ScalarWeightKernel.dotHalf(w, offset + 2L * i, x, xOff + i, n - i, false);
        }
        return s;
    }

    /** {@code L} binary16 values widened exactly; infinities and NaNs (exponent 31) are blended in. */
    private static FloatVector half(MemorySegment w, long at) {
        IntVector h = (IntVector) ShortVector.fromMemorySegment(S, w, at, LE).convertShape(VectorOperators.S2I, I, 0);
        IntVector em = h.and(0x7FFF).lanewise(VectorOperators.LSHL, 13);
        IntVector finite = em.reinterpretAsFloats().mul(TWO_POW_112).reinterpretAsInts();
        IntVector bits = finite.blend(em.or(0x7F800000), h.and(0x7C00).compare(VectorOperators.EQ, 0x7C00));
        return bits.or(h.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
    }

    private static float dotBf16(MemorySegment w, long offset, float[] x, int xOff, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        int i = 0;
        for (int bound = n - 2 * L; i <= bound; i += 2 * L) {
            a0 = bf16(w, offset + 2L * i).fma(FloatVector.fromArray(F, x, xOff + i), a0);
            a1 = bf16(w, offset + 2L * (i + L)).fma(FloatVector.fromArray(F, x, xOff + i + L), a1);
        }
        for (int bound = n - L; i <= bound; i += L) {
            a0 = bf16(w, offset + 2L * i).fma(FloatVector.fromArray(F, x, xOff + i), a0);
        }
        float s = sum(a0.add(a1));
        if (i < n) {
            s += ScalarWeightKernel.dotHalf(w, offset + 2L * i, x, xOff + i, n - i, true);
        }
        return s;
    }

    /**
     * F16 and BF16 rows whose length is a multiple of {@code 2L}: the one-row case of {@link
     * #dotRowsTokens} (the row widened once, four tokens sharing each weight vector), bitwise the
     * results of {@link #dot}.
     */
    @Override
    public void dotTokens(
            GgmlType type,
            MemorySegment w,
            long offset,
            float[] x,
            int tokens,
            int n,
            float[] y,
            int yOff,
            int yStride,
            float[] scratch) {
        if (!tiles(type, n, tokens)) {
            WeightKernel.super.dotTokens(type, w, offset, x, tokens, n, y, yOff, yStride, scratch);
            return;
        }
        dotRowsTokens(type, w, offset, 0, 1, x, tokens, n, y, yOff, yStride, scratch);
    }

    /** Whether {@link #dotRowsTokens} has its tiled path for these rows and tokens. */
    private static boolean tiles(GgmlType type, int n, int tokens) {
        return (type == GgmlType.F16 || type == GgmlType.BF16) && n % (2 * L) == 0 && tokens >= 2;
    }

    /**
     * F16 and BF16 rows whose length is a multiple of {@code 2L}, two or more tokens: the rows are
     * widened once into {@code scratch} (exactly), then tiles of two rows × four tokens run with sixteen
     * accumulators, so each input vector loaded feeds two rows and each weight vector four tokens.
     * Every (row, token) keeps {@link #dotF16}'s two accumulators, chunk order and final sum, so the
     * results are bitwise those of {@link #dot}.
     */
    @Override
    public void dotRowsTokens(
            GgmlType type,
            MemorySegment w,
            long offset,
            long rowBytes,
            int rows,
            float[] x,
            int tokens,
            int n,
            float[] y,
            int yOff,
            int yStride,
            float[] scratch) {
        if (!tiles(type, n, tokens)) {
            // one row at a time, through dotTokens, which takes the same decision
            WeightKernel.super.dotRowsTokens(type, w, offset, rowBytes, rows, x, tokens, n, y, yOff, yStride, scratch);
            return;
        }
        boolean half = type == GgmlType.F16;
        for (int r = 0; r < rows; r++) {
            long at = offset + r * rowBytes;
            int base = r * n;
            for (int i = 0; i < n; i += L) {
                (half ? half(w, at + 2L * i) : bf16(w, at + 2L * i)).intoArray(scratch, base + i);
            }
        }
        int t = 0;
        for (; t + 4 <= tokens; t += 4) {
            int r = 0;
            for (; r + 2 <= rows; r += 2) {
                tile2x4(scratch, r * n, x, t * n, n, y, yOff + r + t * yStride, yStride);
            }
            if (r < rows) {
                tile1x4(scratch, r * n, x, t * n, n, y, yOff + r + t * yStride, yStride);
            }
        }
        for (; t < tokens; t++) {
            for (int r = 0; r < rows; r++) {
                y[yOff + r + t * yStride] = dotWidened(scratch, r * n, x, t * n, n);
            }
        }
    }

    /** Rows {@code wa} and {@code wa + n} of the widened block against four consecutive tokens. */
    private static void tile2x4(float[] w, int wa, float[] x, int x0, int n, float[] y, int yAt, int yStride) {
        int wb = wa + n;
        int x1 = x0 + n;
        int x2 = x1 + n;
        int x3 = x2 + n;
        FloatVector a0e = FloatVector.zero(F), a0o = FloatVector.zero(F);
        FloatVector a1e = FloatVector.zero(F), a1o = FloatVector.zero(F);
        FloatVector a2e = FloatVector.zero(F), a2o = FloatVector.zero(F);
        FloatVector a3e = FloatVector.zero(F), a3o = FloatVector.zero(F);
        FloatVector b0e = FloatVector.zero(F), b0o = FloatVector.zero(F);
        FloatVector b1e = FloatVector.zero(F), b1o = FloatVector.zero(F);
        FloatVector b2e = FloatVector.zero(F), b2o = FloatVector.zero(F);
        FloatVector b3e = FloatVector.zero(F), b3o = FloatVector.zero(F);
        for (int i = 0; i < n; i += 2 * L) {
            FloatVector wa0 = FloatVector.fromArray(F, w, wa + i);
            FloatVector wa1 = FloatVector.fromArray(F, w, wa + i + L);
            FloatVector wb0 = FloatVector.fromArray(F, w, wb + i);
            FloatVector wb1 = FloatVector.fromArray(F, w, wb + i + L);
            FloatVector v0 = FloatVector.fromArray(F, x, x0 + i);
            FloatVector v1 = FloatVector.fromArray(F, x, x0 + i + L);
            a0e = wa0.fma(v0, a0e);
            a0o = wa1.fma(v1, a0o);
            b0e = wb0.fma(v0, b0e);
            b0o = wb1.fma(v1, b0o);
            v0 = FloatVector.fromArray(F, x, x1 + i);
            v1 = FloatVector.fromArray(F, x, x1 + i + L);
            a1e = wa0.fma(v0, a1e);
            a1o = wa1.fma(v1, a1o);
            b1e = wb0.fma(v0, b1e);
            b1o = wb1.fma(v1, b1o);
            v0 = FloatVector.fromArray(F, x, x2 + i);
            v1 = FloatVector.fromArray(F, x, x2 + i + L);
            a2e = wa0.fma(v0, a2e);
            a2o = wa1.fma(v1, a2o);
            b2e = wb0.fma(v0, b2e);
            b2o = wb1.fma(v1, b2o);
            v0 = FloatVector.fromArray(F, x, x3 + i);
            v1 = FloatVector.fromArray(F, x, x3 + i + L);
            a3e = wa0.fma(v0, a3e);
            a3o = wa1.fma(v1, a3o);
            b3e = wb0.fma(v0, b3e);
            b3o = wb1.fma(v1, b3o);
        }
        // sum()'s butterfly written out for the eight sums: this method's graph is large enough that
        // C2 stops inlining calls into it (NodeCountInliningCutoff), and a vector passed to a call
        // that is not inlined is boxed, two allocations per sum
        FloatVector s0 = a0e.add(a0o), s1 = b0e.add(b0o), s2 = a1e.add(a1o), s3 = b1e.add(b1o);
        FloatVector s4 = a2e.add(a2o), s5 = b2e.add(b2o), s6 = a3e.add(a3o), s7 = b3e.add(b3o);
        if (L == 16) {
            s0 = (FloatVector) s0.add(s0.rearrange(SWAP8)).reinterpretShape(F256, 0);
            s1 = (FloatVector) s1.add(s1.rearrange(SWAP8)).reinterpretShape(F256, 0);
            s2 = (FloatVector) s2.add(s2.rearrange(SWAP8)).reinterpretShape(F256, 0);
            s3 = (FloatVector) s3.add(s3.rearrange(SWAP8)).reinterpretShape(F256, 0);
            s4 = (FloatVector) s4.add(s4.rearrange(SWAP8)).reinterpretShape(F256, 0);
            s5 = (FloatVector) s5.add(s5.rearrange(SWAP8)).reinterpretShape(F256, 0);
            s6 = (FloatVector) s6.add(s6.rearrange(SWAP8)).reinterpretShape(F256, 0);
            s7 = (FloatVector) s7.add(s7.rearrange(SWAP8)).reinterpretShape(F256, 0);
        }
        s0 = (FloatVector) s0.add(s0.rearrange(SWAP4)).reinterpretShape(F128, 0);
        s1 = (FloatVector) s1.add(s1.rearrange(SWAP4)).reinterpretShape(F128, 0);
        s2 = (FloatVector) s2.add(s2.rearrange(SWAP4)).reinterpretShape(F128, 0);
        s3 = (FloatVector) s3.add(s3.rearrange(SWAP4)).reinterpretShape(F128, 0);
        s4 = (FloatVector) s4.add(s4.rearrange(SWAP4)).reinterpretShape(F128, 0);
        s5 = (FloatVector) s5.add(s5.rearrange(SWAP4)).reinterpretShape(F128, 0);
        s6 = (FloatVector) s6.add(s6.rearrange(SWAP4)).reinterpretShape(F128, 0);
        s7 = (FloatVector) s7.add(s7.rearrange(SWAP4)).reinterpretShape(F128, 0);
        s0 = s0.add(s0.rearrange(SWAP2));
        s1 = s1.add(s1.rearrange(SWAP2));
        s2 = s2.add(s2.rearrange(SWAP2));
        s3 = s3.add(s3.rearrange(SWAP2));
        s4 = s4.add(s4.rearrange(SWAP2));
        s5 = s5.add(s5.rearrange(SWAP2));
        s6 = s6.add(s6.rearrange(SWAP2));
        s7 = s7.add(s7.rearrange(SWAP2));
        y[yAt] = s0.add(s0.rearrange(SWAP1)).lane(0);
        y[yAt + 1] = s1.add(s1.rearrange(SWAP1)).lane(0);
        y[yAt + yStride] = s2.add(s2.rearrange(SWAP1)).lane(0);
        y[yAt + yStride + 1] = s3.add(s3.rearrange(SWAP1)).lane(0);
        y[yAt + 2 * yStride] = s4.add(s4.rearrange(SWAP1)).lane(0);
        y[yAt + 2 * yStride + 1] = s5.add(s5.rearrange(SWAP1)).lane(0);
        y[yAt + 3 * yStride] = s6.add(s6.rearrange(SWAP1)).lane(0);
        y[yAt + 3 * yStride + 1] = s7.add(s7.rearrange(SWAP1)).lane(0);
    }

    /** Row {@code wa} of the widened block against four consecutive tokens. */
    private static void tile1x4(float[] w, int wa, float[] x, int x0, int n, float[] y, int yAt, int yStride) {
        int x1 = x0 + n;
        int x2 = x1 + n;
        int x3 = x2 + n;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector c0 = FloatVector.zero(F);
        FloatVector d0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector c1 = FloatVector.zero(F);
        FloatVector d1 = FloatVector.zero(F);
        for (int i = 0; i < n; i += 2 * L) {
            FloatVector w0 = FloatVector.fromArray(F, w, wa + i);
            FloatVector w1 = FloatVector.fromArray(F, w, wa + i + L);
            a0 = w0.fma(FloatVector.fromArray(F, x, x0 + i), a0);
            a1 = w1.fma(FloatVector.fromArray(F, x, x0 + i + L), a1);
            b0 = w0.fma(FloatVector.fromArray(F, x, x1 + i), b0);
            b1 = w1.fma(FloatVector.fromArray(F, x, x1 + i + L), b1);
            c0 = w0.fma(FloatVector.fromArray(F, x, x2 + i), c0);
            c1 = w1.fma(FloatVector.fromArray(F, x, x2 + i + L), c1);
            d0 = w0.fma(FloatVector.fromArray(F, x, x3 + i), d0);
            d1 = w1.fma(FloatVector.fromArray(F, x, x3 + i + L), d1);
        }
        y[yAt] = sum(a0.add(a1));
        y[yAt + yStride] = sum(b0.add(b1));
        y[yAt + 2 * yStride] = sum(c0.add(c1));
        y[yAt + 3 * yStride] = sum(d0.add(d1));
    }

    /** One widened row against one token, as {@link #dotF16} accumulates it. */
    private static float dotWidened(float[] w, int wa, float[] x, int x0, int n) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        for (int i = 0; i < n; i += 2 * L) {
            a0 = FloatVector.fromArray(F, w, wa + i).fma(FloatVector.fromArray(F, x, x0 + i), a0);
            a1 = FloatVector.fromArray(F, w, wa + i + L).fma(FloatVector.fromArray(F, x, x0 + i + L), a1);
        }
        return sum(a0.add(a1));
    }

    private static FloatVector bf16(MemorySegment w, long at) {
        return ((IntVector) ShortVector.fromMemorySegment(S, w, at, LE).convertShape(VectorOperators.S2I, I, 0))
                .lanewise(VectorOperators.LSHL, 16)
                .reinterpretAsFloats();
    }

    private static ByteVector bytes(MemorySegment w, long at) {
        return ByteVector.fromMemorySegment(B, w, at, LE);
    }

    /** {@code L} unsigned bytes widened to int lanes (bit operations on int lanes are native, on bytes emulated). */
    private static IntVector ints(MemorySegment w, long at) {
        return ((IntVector) bytes(w, at).convertShape(VectorOperators.B2I, I, 0)).and(0xFF);
    }

    private static FloatVector toFloats(IntVector v) {
        return (FloatVector) v.convert(VectorOperators.I2F, 0);
    }

    private static FloatVector toFloats(ByteVector b) {
        return (FloatVector) b.convertShape(VectorOperators.B2F, F, 0);
    }

    private static float dotQ8_0(MemorySegment w, long offset, float[] x, int xOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long at = offset + 34L * b;
            float d = Float.float16ToFloat(w.get(LE_SHORT, at));
            int xb = xOff + 32 * b;
            FloatVector s0 = FloatVector.zero(F);
            FloatVector s1 = FloatVector.zero(F);
            for (int j = 0; j < 32; j += 2 * L) {
                s0 = toFloats(bytes(w, at + 2 + j)).fma(FloatVector.fromArray(F, x, xb + j), s0);
                s1 = toFloats(bytes(w, at + 2 + j + L)).fma(FloatVector.fromArray(F, x, xb + j + L), s1);
            }
            acc = s0.add(s1).fma(FloatVector.broadcast(F, d), acc);
        }
        return sum(acc);
    }

    private static float dotQ4_0(MemorySegment w, long offset, float[] x, int xOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long at = offset + 18L * b;
            float d = Float.float16ToFloat(w.get(LE_SHORT, at));
            int xb = xOff + 32 * b;
            FloatVector s0 = FloatVector.zero(F);
            FloatVector s1 = FloatVector.zero(F);
            for (int j = 0; j < 16; j += L) {
                ByteVector q = bytes(w, at + 2 + j);
                FloatVector lo = toFloats(q.and((byte) 0x0F).sub((byte) 8));
                FloatVector hi = toFloats(
                        q.lanewise(VectorOperators.LSHR, 4).and((byte) 0x0F).sub((byte) 8));
                s0 = lo.fma(FloatVector.fromArray(F, x, xb + j), s0);
                s1 = hi.fma(FloatVector.fromArray(F, x, xb + 16 + j), s1);
            }
            acc = s0.add(s1).fma(FloatVector.broadcast(F, d), acc);
        }
        return sum(acc);
    }

    private static float dotQ4K(MemorySegment w, long offset, float[] x, int xOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0, nb = n / 256; b < nb; b++) {
            long at = offset + 144L * b;
            float d = Float.float16ToFloat(w.get(LE_SHORT, at));
            float dmin = Float.float16ToFloat(w.get(LE_SHORT, at + 2));
            long scales = at + 4;
            long qs = at + 16;
            int xb = xOff + 256 * b;
            // sub-block s = 2c + k: the low (k = 0) or high (k = 1) nibbles of qs[32c .. 32c+32)
            for (int s = 0; s < 8; s++) {
                int c = s >> 1;
                int shift = 4 * (s & 1);
                FloatVector qx = FloatVector.zero(F);
                FloatVector xs = FloatVector.zero(F);
                for (int j = 0; j < 32; j += L) {
                    IntVector q = ints(w, qs + 32L * c + j)
                            .lanewise(VectorOperators.LSHR, shift)
                            .and(0x0F);
                    FloatVector a = FloatVector.fromArray(F, x, xb + 32 * s + j);
                    qx = toFloats(q).fma(a, qx);
                    xs = xs.add(a);
                }
                acc = qx.fma(FloatVector.broadcast(F, d * GgmlQuants.q4kScale(w, scales, s)), acc);
                acc = xs.fma(FloatVector.broadcast(F, -dmin * GgmlQuants.q4kMin(w, scales, s)), acc);
            }
        }
        return sum(acc);
    }

    private static float dotQ6K(MemorySegment w, long offset, float[] x, int xOff, int n) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0, nb = n / 256; b < nb; b++) {
            long at = offset + 210L * b;
            float d = Float.float16ToFloat(w.get(LE_SHORT, at + 208));
            for (int half = 0; half < 2; half++) {
                long ql = at + 64L * half;
                long qh = at + 128 + 32L * half;
                long sc = at + 192 + 8L * half;
                int yb = xOff + 256 * b + 128 * half;
                for (int l = 0; l < 32; l += L) {
                    int is = l / 16;
                    IntVector lo0 = ints(w, ql + l);
                    IntVector lo1 = ints(w, ql + 32 + l);
                    IntVector h = ints(w, qh + l);
                    // quarter k: low nibbles of ql[l] (k=0) or ql[l+32] (k=1), high nibbles (k=2, 3),
                    // with bits 2k, 2k+1 of qh[l] on top; one loop body keeps the method small enough
                    // for C2 to inline every vector operation
                    for (int k = 0; k < 4; k++) {
                        IntVector lo = (k & 1) == 0 ? lo0 : lo1;
                        IntVector q = lo.lanewise(VectorOperators.LSHR, 4 * (k >> 1))
                                .and(0x0F)
                                .or(h.lanewise(VectorOperators.LSHR, 2 * k)
                                        .and(3)
                                        .lanewise(VectorOperators.LSHL, 4))
                                .sub(32);
                        float scale = d * w.get(ValueLayout.JAVA_BYTE, sc + is + 2 * k);
                        acc = toFloats(q)
                                .mul(FloatVector.fromArray(F, x, yb + 32 * k + l))
                                .fma(FloatVector.broadcast(F, scale), acc);
                    }
                }
            }
        }
        return sum(acc);
    }
}
