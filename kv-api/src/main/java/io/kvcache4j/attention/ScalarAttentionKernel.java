package io.kvcache4j.attention;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Portable implementation of {@link AttentionKernel}, used when the Vector API is not available.
 * Not a naive loop: dot products use four independent accumulators (the dependency chain of one
 * accumulator is what makes strict-order scalar code slow), and values accumulate block-wise so
 * each output element stays in a register over {@link GroupAttention#BLOCK} keys.
 */
final class ScalarAttentionKernel implements AttentionKernel, VectorUtilSupport, ConversionSupport {
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The shared instance (the kernel is stateless). */
    public static final ScalarAttentionKernel INSTANCE = new ScalarAttentionKernel();

    private ScalarAttentionKernel() {}

    @Override
    public void onlineSoftmax(GroupAttention state, int nb, int slot) {
        softmaxBlock(state, nb, slot);
    }

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        return dotScalar(a, aOff, b, bOff, n);
    }

    @Override
    public void projectSigns(
            float[] planes,
            int bits,
            int stride,
            float[] x,
            int xOff,
            int xStride,
            int count,
            int n,
            long[] out,
            int outOff) {
        checkProjectArgs(planes, bits, stride, x, xOff, xStride, count, n, out, outOff);
        projectSignsScalar(planes, bits, stride, x, xOff, xStride, 0, count, n, out, outOff);
    }

    /** {@link #projectSigns} of vectors {@code [from, count)}. */
    static void projectSignsScalar(
            float[] planes,
            int bits,
            int stride,
            float[] x,
            int xOff,
            int xStride,
            int from,
            int count,
            int n,
            long[] out,
            int outOff) {
        for (int v = from; v < count; v++) {
            int xv = xOff + v * xStride;
            long word = 0;
            for (int p = 0; p < bits; p++) {
                float acc = 0f;
                for (int i = 0; i < n; i++) {
                    acc = Math.fma(x[xv + i], planes[i * stride + p], acc);
                }
                if (acc >= 0f) {
                    word |= 1L << p;
                }
            }
            out[outOff + v] = word;
        }
    }

    static void checkProjectArgs(
            float[] planes,
            int bits,
            int stride,
            float[] x,
            int xOff,
            int xStride,
            int count,
            int n,
            long[] out,
            int outOff) {
        if (bits < 1 || bits > 64) {
            throw new IllegalArgumentException("bits must be in [1, 64], was " + bits);
        }
        if (stride < bits || stride % 16 != 0) {
            throw new IllegalArgumentException(
                    "stride must be a multiple of 16 and >= bits " + bits + ", was " + stride);
        }
        if (count < 0 || n < 0) {
            throw new IllegalArgumentException("count and n must be >= 0, were " + count + " and " + n);
        }
        if (count == 0) {
            return;
        }
        if ((long) n * stride > planes.length) {
            throw new IllegalArgumentException("planes holds " + planes.length + " floats; " + n
                    + " dimensions of stride " + stride + " need " + (long) n * stride);
        }
        long lastX = xOff + (long) (count - 1) * xStride;
        if (xOff < 0 || xStride < 0 || lastX + n > x.length) {
            throw new IllegalArgumentException("vectors of " + n + " at offset " + xOff + ", stride " + xStride + " × "
                    + count + " do not fit in x of length " + x.length);
        }
        if (outOff < 0 || (long) outOff + count > out.length) {
            throw new IllegalArgumentException(
                    "out[" + outOff + ".." + ((long) outOff + count) + ") is out of range [0, " + out.length + "]");
        }
    }

    @Override
    public void recurrences(float[] mass, int n, float threshold, long[] state, int position) {
        checkRecurrenceArgs(mass, n, state, position);
        recurrencesScalar(mass, 0, n, threshold, state, position);
    }

    /** {@link #recurrences} over slots {@code [from, n)}. */
    static void recurrencesScalar(float[] mass, int from, int n, float threshold, long[] state, int position) {
        long stamp = (long) position << 32;
        for (int i = from; i < n; i++) {
            if (mass[i] >= threshold) {
                long st = state[i];
                long interval = Math.max(st & 0xFFFFFFFFL, position - (st >>> 32));
                state[i] = stamp | interval;
            }
        }
    }

    @Override
    public int hammingStep(
            long[] sig,
            long[] loss,
            int n,
            long[] words,
            int pairs,
            int singles,
            boolean accumulate,
            long[] pos,
            int candidates,
            long lo,
            long hi) {
        checkHammingArgs(sig, loss, n, words, pairs, singles, pos, candidates);
        return hammingStepScalar(sig, loss, 0, n, words, pairs, singles, accumulate, pos, candidates, lo, hi, -1);
    }

    /**
     * {@link #hammingStep} over slots {@code [from, n)}, continuing from the best slot {@code best}
     * found below {@code from} (−1: none).
     */
    static int hammingStepScalar(
            long[] sig,
            long[] loss,
            int from,
            int n,
            long[] words,
            int pairs,
            int singles,
            boolean accumulate,
            long[] pos,
            int candidates,
            long lo,
            long hi,
            int best) {
        for (int s = from; s < n; s++) {
            long k = sig[s];
            long k2 = k | k << 32;
            long hd = 0;
            for (int w = 0; w < pairs; w++) {
                hd += Long.bitCount(words[w] ^ k2);
            }
            for (int w = pairs; w < pairs + singles; w++) {
                hd += Long.bitCount(words[w] ^ k);
            }
            long l = accumulate ? loss[s] + hd : hd;
            loss[s] = l;
            if (s < candidates && pos[s] >= lo && pos[s] < hi && (best < 0 || l > loss[best])) {
                best = s;
            }
        }
        return best;
    }

    static void checkHammingArgs(
            long[] sig, long[] loss, int n, long[] words, int pairs, int singles, long[] pos, int candidates) {
        if (n < 0 || n > sig.length || n > loss.length) {
            throw new IllegalArgumentException(
                    "n must be in [0, min(sig.length " + sig.length + ", loss.length " + loss.length + ")], was " + n);
        }
        if (candidates < 0 || candidates > n || candidates > pos.length) {
            throw new IllegalArgumentException(
                    "candidates must be in [0, min(n " + n + ", pos.length " + pos.length + ")], was " + candidates);
        }
        if (pairs < 0 || singles < 0 || (long) pairs + singles > words.length) {
            throw new IllegalArgumentException("pairs " + pairs + " and singles " + singles
                    + " must be >= 0 and fit in words of length " + words.length);
        }
    }

    static void checkRecurrenceArgs(float[] mass, int n, long[] state, int position) {
        if (n < 0 || n > mass.length || n > state.length) {
            throw new IllegalArgumentException("n must be in [0, min(mass.length " + mass.length + ", state.length "
                    + state.length + ")], was " + n);
        }
        if (position < 0) {
            throw new IllegalArgumentException("position must be >= 0, was " + position);
        }
    }

    static float dotScalar(float[] a, int aOff, float[] b, int bOff, int n) {
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int i = 0;
        for (int bound = n & ~3; i < bound; i += 4) {
            s0 = Math.fma(a[aOff + i], b[bOff + i], s0);
            s1 = Math.fma(a[aOff + i + 1], b[bOff + i + 1], s1);
            s2 = Math.fma(a[aOff + i + 2], b[bOff + i + 2], s2);
            s3 = Math.fma(a[aOff + i + 3], b[bOff + i + 3], s3);
        }
        for (; i < n; i++) {
            s0 = Math.fma(a[aOff + i], b[bOff + i], s0);
        }
        return (s0 + s1) + (s2 + s3);
    }

    @Override
    public void encode(float[] src, int srcOff, MemorySegment dst, long dstOffset, KvDType type, int n) {
        encodeScalar(src, srcOff, dst, dstOffset, type, n);
    }

    static void encodeScalar(float[] src, int srcOff, MemorySegment dst, long dstOffset, KvDType type, int n) {
        switch (type) {
            case F32 -> {
                for (int i = 0; i < n; i++) {
                    dst.set(F32, dstOffset + 4L * i, src[srcOff + i]);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    dst.set(I16, dstOffset + 2L * i, Float.floatToFloat16(src[srcOff + i]));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    dst.set(I16, dstOffset + 2L * i, KvDType.floatToBf16Bits(src[srcOff + i]));
                }
            }
        }
    }

    @Override
    public void decode(MemorySegment src, long srcOffset, KvDType type, float[] dst, int dstOff, int n) {
        decodeScalar(src, srcOffset, type, dst, dstOff, n);
    }

    static void decodeScalar(MemorySegment src, long srcOffset, KvDType type, float[] dst, int dstOff, int n) {
        switch (type) {
            case F32 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOff + i] = src.get(F32, srcOffset + 4L * i);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOff + i] = Float.float16ToFloat(src.get(I16, srcOffset + 2L * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOff + i] = KvDType.bf16BitsToFloat(src.get(I16, srcOffset + 2L * i));
                }
            }
        }
    }

    @Override
    public void encodeStrided(
            float[] src, int srcOff, MemorySegment dst, long dstOffset, long strideBytes, KvDType type, int n) {
        for (int i = 0; i < n; i++) {
            long at = dstOffset + i * strideBytes;
            float x = src[srcOff + i];
            switch (type) {
                case F32 -> dst.set(F32, at, x);
                case F16 -> dst.set(I16, at, Float.floatToFloat16(x));
                case BF16 -> dst.set(I16, at, KvDType.floatToBf16Bits(x));
            }
        }
    }

    @Override
    public void decodeStrided(
            MemorySegment src, long srcOffset, long strideBytes, KvDType type, float[] dst, int dstOff, int n) {
        for (int i = 0; i < n; i++) {
            long at = srcOffset + i * strideBytes;
            dst[dstOff + i] = switch (type) {
                case F32 -> src.get(F32, at);
                case F16 -> Float.float16ToFloat(src.get(I16, at));
                case BF16 -> KvDType.bf16BitsToFloat(src.get(I16, at));
            };
        }
    }

    @Override
    public void scan(
            GroupAttention st,
            MemorySegment page,
            long keyOffset,
            int keyStride,
            long valueOffset,
            KvDType type,
            int row,
            int rows,
            int firstSlot) {
        checkRows(keyStride, row, rows);
        final int d = st.headDim;
        final int g = st.group;
        final int block = GroupAttention.BLOCK;
        final int e = type.bytes();
        final float[] kt = st.kBuf; // [d][block]: dimension-major block of keys
        for (int r0 = 0; r0 < rows; r0 += block) {
            int nb = Math.min(block, rows - r0);
            int r = row + r0;
            for (int i = 0; i < d; i++) {
                decodeScalar(page, keyOffset + ((long) i * keyStride + r) * e, type, kt, i * block, nb);
            }
            for (int h = 0; h < g; h++) {
                int pBase = h * block;
                for (int j = 0; j < nb; j++) {
                    st.blockLogits[pBase + j] = 0f;
                }
                // Sixteen independent accumulators (one per key), one pass over the dimensions.
                for (int i = 0; i < d; i++) {
                    float qi = st.q[h * d + i];
                    int kRow = i * block;
                    for (int j = 0; j < nb; j++) {
                        st.blockLogits[pBase + j] = Math.fma(qi, kt[kRow + j], st.blockLogits[pBase + j]);
                    }
                }
                for (int j = nb; j < block; j++) {
                    st.blockLogits[pBase + j] = Float.NEGATIVE_INFINITY;
                }
            }
            softmaxBlock(st, nb, firstSlot + r0);
            accumulateBlock(st, page, valueOffset, r, type, nb);
        }
    }

    /** {@link #scan}'s value step for one block. */
    @Override
    public void accumulateValues(
            GroupAttention st, MemorySegment page, long valueOffset, int row, KvDType type, int nb) {
        final int block = GroupAttention.BLOCK;
        if (nb < 1 || nb > block) {
            throw new IllegalArgumentException("nb " + nb + " out of range [1, " + block + "]");
        }
        checkRow(row);
        accumulateBlock(st, page, valueOffset, row, type, nb);
    }

    /**
     * Rows {@code [row, row + nb)} of the {@link ValueChunks} region at {@code valueOffset} (through
     * the state's scratch block when they cross two stored blocks), widened chunk by chunk into {@code
     * vBuf} (the same layout) and added to the accumulator with the block's weights, each output
     * element over the rows in order.
     */
    private static void accumulateBlock(
            GroupAttention st, MemorySegment page, long valueOffset, int row, KvDType type, int nb) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final int e = type.bytes();
        MemorySegment vPage = page;
        long vBase = valueOffset + (long) row * d * e;
        if ((row & (block - 1)) != 0) {
            ValueChunks.copyBlock(page, valueOffset, row, nb, st.valueScratch, d, e);
            vPage = st.valueScratch;
            vBase = 0;
        }
        if (nb == block) {
            // a whole block: its chunks lie back to back, as in vBuf
            decodeScalar(vPage, vBase, type, st.vBuf, 0, block * d);
        } else {
            for (int c0 = 0; c0 < d; c0 += ValueChunks.WIDTH) {
                int w = Math.min(ValueChunks.WIDTH, d - c0);
                decodeScalar(vPage, vBase + (long) c0 * block * e, type, st.vBuf, c0 * block, nb * w);
            }
        }
        for (int h = 0; h < st.group; h++) {
            int pBase = h * block;
            int aBase = h * d;
            for (int i = 0; i < d; i++) {
                float a = st.acc[aBase + i];
                int vb = (int) ValueChunks.element(d, 0, i);
                int vw = ValueChunks.width(d, i);
                for (int j = 0; j < nb; j++) {
                    a = Math.fma(st.blockLogits[pBase + j], st.vBuf[vb + j * vw], a);
                }
                st.acc[aBase + i] = a;
            }
        }
    }

    /** @throws IllegalArgumentException if {@code row < 0} */
    static void checkRow(int row) {
        if (row < 0) {
            throw new IllegalArgumentException("row must be >= 0, was " + row);
        }
    }

    /**
     * Checks that rows {@code [row, row + rows)} lie in a page of {@code pageRows} rows.
     *
     * @throws IllegalArgumentException naming the values otherwise
     */
    static void checkRows(int pageRows, int row, int rows) {
        if (row < 0 || rows < 0 || (long) row + rows > pageRows) {
            throw new IllegalArgumentException(
                    "rows [" + row + ", " + ((long) row + rows) + ") out of range for a page of " + pageRows + " rows");
        }
    }

    @Override
    public void scores(
            GroupAttention st,
            MemorySegment page,
            long keyOffset,
            int keyStride,
            KvDType type,
            int rows,
            float[] out,
            int outOffset,
            int outStride) {
        final int d = st.headDim;
        final int g = st.group;
        final int block = GroupAttention.BLOCK;
        final int e = type.bytes();
        final float[] kt = st.kBuf;
        for (int r0 = 0; r0 < rows; r0 += block) {
            int nb = Math.min(block, rows - r0);
            for (int i = 0; i < d; i++) {
                decodeScalar(page, keyOffset + ((long) i * keyStride + r0) * e, type, kt, i * block, nb);
            }
            for (int h = 0; h < g; h++) {
                int o = h * outStride + outOffset + r0;
                for (int j = 0; j < nb; j++) {
                    out[o + j] = 0f;
                }
                for (int i = 0; i < d; i++) {
                    float qi = st.q[h * d + i];
                    int kRow = i * block;
                    for (int j = 0; j < nb; j++) {
                        out[o + j] = Math.fma(qi, kt[kRow + j], out[o + j]);
                    }
                }
            }
        }
    }

    /**
     * Online-softmax update for one block: raises the running maximum (rescaling the sum and
     * accumulator), and replaces the block's logits by their weights {@code exp(s − m)}, adding each
     * to the running sum of its block position ({@link GroupAttention#l}); if the pass records, the
     * weights and the maxima they are relative to are kept for {@link #mass}. Weights come from
     * {@link SoftmaxExp} and sums are lane-wise, as in the Vector API twin, so both kernels turn the
     * same logits into the same bits.
     */
    static void softmaxBlock(GroupAttention st, int nb, int slot) {
        final int block = GroupAttention.BLOCK;
        final int d = st.headDim;
        if (st.recording && st.recBlocks == st.recCap) {
            st.growBlockRecord();
        }
        for (int h = 0; h < st.group; h++) {
            int pBase = h * block;
            float bm = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < nb; j++) {
                bm = Math.max(bm, st.blockLogits[pBase + j]);
            }
            float mOld = st.m[h];
            if (bm > mOld) {
                float corr = SoftmaxExp.exp(mOld - bm);
                for (int j = pBase; j < pBase + block; j++) {
                    st.l[j] *= corr;
                }
                for (int i = h * d, end = i + d; i < end; i++) {
                    st.acc[i] *= corr;
                }
                st.m[h] = bm;
            }
            float mNew = st.m[h];
            for (int j = 0; j < nb; j++) {
                float p = SoftmaxExp.exp(st.blockLogits[pBase + j] - mNew);
                st.blockLogits[pBase + j] = p;
                st.l[pBase + j] += p;
            }
            if (st.recording) {
                System.arraycopy(st.blockLogits, pBase, st.logits, h * st.logitsStride + slot, nb);
                st.recMax[h * st.recCap + st.recBlocks] = mNew;
            }
        }
        if (st.recording) {
            int b = st.recBlocks;
            st.recStart[b] = slot;
            st.recLen[b] = nb;
            st.recBlocks = b + 1;
        }
    }

    /**
     * {@code Σ p[off + j]} for {@code j < BLOCK} (16) in one fixed pairwise order, the butterfly that
     * a 16-lane (or 8-lane, after one vector add of the two halves) shuffle reduction follows. The
     * softmax sum of both kernels ends with it; a fixed order is what keeps a sum independent of the
     * JIT tier, which {@code reduceLanes(ADD)} does not.
     */
    static float blockSum(float[] p, int off) {
        float s0 = (p[off] + p[off + 8]) + (p[off + 4] + p[off + 12]);
        float s1 = (p[off + 2] + p[off + 10]) + (p[off + 6] + p[off + 14]);
        float s2 = (p[off + 1] + p[off + 9]) + (p[off + 5] + p[off + 13]);
        float s3 = (p[off + 3] + p[off + 11]) + (p[off + 7] + p[off + 15]);
        return (s0 + s1) + (s2 + s3);
    }

    @Override
    public void mass(GroupAttention st, int slots, ScoreAggregation aggregation, float[] massOut) {
        checkMassArgs(st, slots, massOut);
        for (int h = 0; h < st.group; h++) {
            blockScales(st, h, 0);
        }
        int covered = 0;
        for (int b = 0; b < st.recBlocks; b++) {
            covered = massBlock(st, b, slots, covered, aggregation, massOut);
        }
        java.util.Arrays.fill(massOut, Math.min(covered, slots), slots, 0f);
    }

    /**
     * {@code recScale[h][b] = exp(recMax[h][b] − lse[h])} for the recorded blocks {@code b >= from}
     * of head {@code h}: the factor that turns a block's weights into softmax mass. 0 for a head
     * whose pass saw no key ({@code lse = −∞}), so that it adds no mass.
     */
    static void blockScales(GroupAttention st, int h, int from) {
        float lse = st.lse[h];
        int row = h * st.recCap;
        if (lse == Float.NEGATIVE_INFINITY) {
            java.util.Arrays.fill(st.recScale, row + from, row + st.recBlocks, 0f);
            return;
        }
        for (int b = from; b < st.recBlocks; b++) {
            st.recScale[row + b] = SoftmaxExp.exp(st.recMax[row + b] - lse);
        }
    }

    /**
     * The mass of recorded block {@code b}'s slots below {@code slots}: per slot {@code Σ_h
     * fma(w_h, scale_h, ·)} over the heads in order (or the maximum of {@code w_h·scale_h}), the mean
     * multiplied by {@code 1f / group} (exactly the quotient for groups of 2^k); slots from {@code covered} up to the block's first, which no block
     * recorded, get 0. Returns the new covered limit. The Vector API twin computes whole blocks of
     * {@code BLOCK} slots lane-wise with the same operations in the same order.
     */
    static int massBlock(
            GroupAttention st, int b, int slots, int covered, ScoreAggregation aggregation, float[] massOut) {
        int start = st.recStart[b];
        int end = Math.min(slots, start + st.recLen[b]);
        if (start >= end) {
            return covered;
        }
        if (start > covered) {
            java.util.Arrays.fill(massOut, covered, start, 0f);
        }
        massSlots(st, b, start, end, aggregation, massOut);
        return Math.max(covered, end);
    }

    static void massSlots(GroupAttention st, int b, int from, int to, ScoreAggregation aggregation, float[] massOut) {
        final int g = st.group;
        for (int j = from; j < to; j++) {
            float agg = 0f;
            for (int h = 0; h < g; h++) {
                // a head that saw no key has scale 0, which adds nothing (see blockScales)
                float w = st.logits[h * st.logitsStride + j];
                float c = st.recScale[h * st.recCap + b];
                agg = aggregation == ScoreAggregation.MAX ? Math.max(agg, w * c) : Math.fma(w, c, agg);
            }
            massOut[j] = aggregation == ScoreAggregation.MEAN ? agg * (1f / g) : agg;
        }
    }

    static void checkMassArgs(GroupAttention st, int slots, float[] massOut) {
        if (!st.recording) {
            throw new IllegalStateException("mass() needs recordLogits() before the pass");
        }
        if (slots < 0 || slots > st.logitsStride) {
            throw new IllegalArgumentException("slots " + slots + " out of range [0, " + st.logitsStride + "]");
        }
        if (massOut.length < slots) {
            throw new IllegalArgumentException("massOut length " + massOut.length + " < slots " + slots);
        }
    }
}
