package io.kvcache4j.attention;

import static io.kvcache4j.api.KvDType.F16;
import static io.kvcache4j.api.KvDType.F32;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API implementation of {@link AttentionKernel}, at the platform's preferred vector width.
 *
 * <p>Half-precision rows are widened in registers: binary16 by the exponent-rebias trick ({@code
 * (h & 0x7fff) << 13} reinterpreted as float and multiplied by 2<sup>112</sup>, which is exact for
 * normal and subnormal values; the cache never stores NaN or infinity), bfloat16 by a 16-bit shift.
 * f16, bf16 and f32 blocks are read straight from the page, each key and value vector loaded (and widened)
 * once for every query head of the group ({@link #path}); other types and shapes widen a block of
 * {@link GroupAttention#BLOCK} rows once into L1-resident scratch first. Either way each stored byte
 * is read from memory once.
 *
 * <p>Results do not depend on the JIT tier: every operation used has one IEEE result, the same in
 * C2's intrinsics as in the Java fallback that the interpreter and C1 run. That rules out two
 * Vector API operations whose results are not pinned down: {@code lanewise(EXP)} (a vector math
 * library in C2, {@code Math.exp} per lane elsewhere), replaced by {@link #expLanes}, which gives
 * the bits of {@link SoftmaxExp#exp}; and {@code reduceLanes(ADD)} on floats (a tree in C2, lane
 * after lane elsewhere), replaced by lane-wise running sums and a butterfly in a fixed order. Where the
 * scalar twin adds in the same order (scores of four heads at a time, softmax weights and sums,
 * weighted values, mass), the two kernels agree to the bit.
 *
 * <p>Loaded reflectively by {@link AttentionKernels} only when {@code jdk.incubator.vector} is in the
 * boot layer.
 */
final class PanamaAttentionKernel implements AttentionKernel, VectorUtilSupport, ConversionSupport {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Long> L = LongVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final int LANES = F.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final float TWO_POW_112 = 0x1.0p112f;
    // Butterfly shuffles for a lane sum in one fixed order (see laneSum): the first step at the
    // preferred width, the others on its lower half and quarter.
    private static final VectorSpecies<Float> F256 = FloatVector.SPECIES_256;
    private static final VectorSpecies<Float> F128 = FloatVector.SPECIES_128;
    private static final VectorShuffle<Float> SWAP8 = LANES >= 16 ? VectorShuffle.fromOp(F, i -> i ^ 8) : null;
    private static final VectorShuffle<Float> SWAP4 = VectorShuffle.fromOp(F256, i -> i ^ 4);
    private static final VectorShuffle<Float> SWAP2 = VectorShuffle.fromOp(F128, i -> i ^ 2);
    private static final VectorShuffle<Float> SWAP1 = VectorShuffle.fromOp(F128, i -> i ^ 1);

    PanamaAttentionKernel() {
        if (LANES < 4 || GroupAttention.BLOCK % LANES != 0) {
            throw new UnsupportedOperationException("preferred float vector has " + LANES + " lanes; need 4, 8 or 16");
        }
    }

    @Override
    public void onlineSoftmax(GroupAttention state, int nb, int slot) {
        softmaxBlock(state, nb, slot);
    }

    @Override
    public String name() {
        return "panama";
    }

    /**
     * Eight one-head tokens, four tokens of two or four heads, two of eight: the direct f16 path then
     * widens each key and value vector once for eight rows ({@link #scoresF16x8Paired}, {@link
     * #accumulateF16x8}) or sixteen ({@link #scoresF16x16}, {@link #accumulateF16x16}), with each
     * head's arithmetic that of its own token's pass (a one-head pass takes the widen-first path,
     * whose {@code scores1} sums even and odd dimensions in two chains, as the paired kernel does).
     */
    @Override
    public int prefillTileTokens(KvDType type, int headDim, int group) {
        if (type != KvDType.F16 || LANES != GroupAttention.BLOCK || headDim % LANES != 0) {
            return 1;
        }
        return group == 1 ? 8 : group == 2 || group == 4 ? 4 : group == 8 ? 2 : 1;
    }

    @Override
    public float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        int i = 0;
        float sum = 0f;
        if (n >= 2 * LANES) {
            i = n - n % LANES;
            sum = dotBody(a, aOff, b, bOff, i);
        }
        for (; i < n; i++) {
            sum = Math.fma(a[aOff + i], b[bOff + i], sum);
        }
        return sum;
    }

    /**
     * The vector part of {@link #dot}: the lane sum of four accumulators over {@code limit} elements (a
     * multiple of {@code LANES}, at least two vectors). A method of its own so that {@link #dot} and this
     * both stay under C2's inlining size: one method with both parts was compiled as a call, which cost
     * about as much as the arithmetic of 64 dimensions. The split leaves every sum unchanged.
     */
    private static float dotBody(float[] a, int aOff, float[] b, int bOff, int limit) {
        FloatVector acc0 = FloatVector.zero(F);
        FloatVector acc1 = FloatVector.zero(F);
        FloatVector acc2 = FloatVector.zero(F);
        FloatVector acc3 = FloatVector.zero(F);
        int i = 0;
        for (int bound = limit - 4 * LANES; i <= bound; i += 4 * LANES) {
            acc0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc0);
            acc1 = FloatVector.fromArray(F, a, aOff + i + LANES)
                    .fma(FloatVector.fromArray(F, b, bOff + i + LANES), acc1);
            acc2 = FloatVector.fromArray(F, a, aOff + i + 2 * LANES)
                    .fma(FloatVector.fromArray(F, b, bOff + i + 2 * LANES), acc2);
            acc3 = FloatVector.fromArray(F, a, aOff + i + 3 * LANES)
                    .fma(FloatVector.fromArray(F, b, bOff + i + 3 * LANES), acc3);
        }
        for (; i < limit; i += LANES) {
            acc0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), acc0);
        }
        return laneSum(acc0.add(acc1).add(acc2.add(acc3)));
    }

    /**
     * The lanes' sum by butterfly, in one fixed order: lane {@code i} and lane {@code i ^ 8} first,
     * then {@code i ^ 4}, {@code i ^ 2}, {@code i ^ 1}. {@code reduceLanes(ADD)} leaves the order open
     * (C2 adds as a tree, the interpreter and C1 lane after lane). After the first step only the lower
     * half is live, so the later steps run on 256- and 128-bit vectors, whose shuffles stay within a
     * register half and cost less than full-width ones; the sums are those of the full-width
     * butterfly.
     */
    static float laneSum(FloatVector v) {
        FloatVector w = v;
        if (LANES >= 16) {
            w = (FloatVector) w.add(w.rearrange(SWAP8)).reinterpretShape(F256, 0);
        }
        if (LANES >= 8) {
            w = (FloatVector) w.add(w.rearrange(SWAP4)).reinterpretShape(F128, 0);
        }
        w = w.add(w.rearrange(SWAP2));
        return w.add(w.rearrange(SWAP1)).lane(0);
    }

    /**
     * {@code LANES} planes per vector: each dimension's plane row is loaded once and multiplied by the
     * broadcast element of four vectors at a time (four independent FMA chains), so no horizontal sum
     * is needed; each lane's chain is the scalar twin's loop for its plane.
     */
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
        ScalarAttentionKernel.checkProjectArgs(planes, bits, stride, x, xOff, xStride, count, n, out, outOff);
        if (stride % LANES != 0) {
            ScalarAttentionKernel.projectSignsScalar(planes, bits, stride, x, xOff, xStride, 0, count, n, out, outOff);
            return;
        }
        final long keep = bits == 64 ? -1L : (1L << bits) - 1;
        final int chunks = (bits + LANES - 1) / LANES;
        int v = 0;
        for (; v + 4 <= count; v += 4) {
            int x0 = xOff + v * xStride;
            int x1 = x0 + xStride;
            int x2 = x1 + xStride;
            int x3 = x2 + xStride;
            long w0 = 0;
            long w1 = 0;
            long w2 = 0;
            long w3 = 0;
            for (int c = 0; c < chunks; c++) {
                FloatVector a0 = FloatVector.zero(F);
                FloatVector a1 = a0;
                FloatVector a2 = a0;
                FloatVector a3 = a0;
                for (int i = 0, row = c * LANES; i < n; i++, row += stride) {
                    FloatVector p = FloatVector.fromArray(F, planes, row);
                    a0 = p.fma(FloatVector.broadcast(F, x[x0 + i]), a0);
                    a1 = p.fma(FloatVector.broadcast(F, x[x1 + i]), a1);
                    a2 = p.fma(FloatVector.broadcast(F, x[x2 + i]), a2);
                    a3 = p.fma(FloatVector.broadcast(F, x[x3 + i]), a3);
                }
                int shift = c * LANES;
                w0 |= a0.compare(VectorOperators.GE, 0f).toLong() << shift;
                w1 |= a1.compare(VectorOperators.GE, 0f).toLong() << shift;
                w2 |= a2.compare(VectorOperators.GE, 0f).toLong() << shift;
                w3 |= a3.compare(VectorOperators.GE, 0f).toLong() << shift;
            }
            out[outOff + v] = w0 & keep;
            out[outOff + v + 1] = w1 & keep;
            out[outOff + v + 2] = w2 & keep;
            out[outOff + v + 3] = w3 & keep;
        }
        for (; v < count; v++) {
            int x0 = xOff + v * xStride;
            long w = 0;
            for (int c = 0; c < chunks; c++) {
                FloatVector a = FloatVector.zero(F);
                for (int i = 0, row = c * LANES; i < n; i++, row += stride) {
                    a = FloatVector.fromArray(F, planes, row).fma(FloatVector.broadcast(F, x[x0 + i]), a);
                }
                w |= a.compare(VectorOperators.GE, 0f).toLong() << (c * LANES);
            }
            out[outOff + v] = w & keep;
        }
    }

    /**
     * Eight slots per 512-bit vector: signatures widened, XORed with each query word and counted
     * with a lane-wise bit count, the loss added and stored, and each lane's best unprotected slot
     * kept by a strict compare and blend (so each lane keeps its first maximum); the lanes' bests
     * are then reduced to the lowest slot of the largest loss, the scalar twin's answer.
     */
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
        ScalarAttentionKernel.checkHammingArgs(sig, loss, n, words, pairs, singles, pos, candidates);
        final int lanes = L.length();
        LongVector best = LongVector.broadcast(L, Long.MIN_VALUE);
        LongVector bestSlot = LongVector.broadcast(L, -1L);
        LongVector iota = LongVector.zero(L).addIndex(1);
        int s = 0;
        // whole vectors below candidates: every lane may win
        for (int bound = candidates - lanes; s <= bound; s += lanes) {
            // written out here rather than in a helper: a vector returned from a call C2 does not
            // inline is boxed
            LongVector k = LongVector.fromArray(L, sig, s);
            LongVector k2 = k.or(k.lanewise(VectorOperators.LSHL, 32));
            LongVector hd = LongVector.zero(L);
            for (int w = 0; w < pairs; w++) {
                hd = hd.add(k2.lanewise(VectorOperators.XOR, words[w]).lanewise(VectorOperators.BIT_COUNT));
            }
            for (int w = pairs; w < pairs + singles; w++) {
                hd = hd.add(k.lanewise(VectorOperators.XOR, words[w]).lanewise(VectorOperators.BIT_COUNT));
            }
            LongVector l = accumulate ? LongVector.fromArray(L, loss, s).add(hd) : hd;
            l.intoArray(loss, s);
            LongVector p = LongVector.fromArray(L, pos, s);
            VectorMask<Long> win = p.compare(VectorOperators.GE, lo)
                    .and(p.compare(VectorOperators.LT, hi))
                    .and(l.compare(VectorOperators.GT, best));
            best = best.blend(l, win);
            bestSlot = bestSlot.blend(iota.add(s), win);
        }
        int found = -1;
        long max = Long.MIN_VALUE;
        for (int k = 0; k < lanes; k++) {
            long slot = bestSlot.lane(k);
            long value = best.lane(k);
            if (slot >= 0 && (found < 0 || value > max || (value == max && slot < found))) {
                found = (int) slot;
                max = value;
            }
        }
        // the rest (the last candidates, and slots that are scored but never candidates) slot by
        // slot: a later slot wins only with a strictly larger loss, as in the twin
        return ScalarAttentionKernel.hammingStepScalar(
                sig, loss, s, n, words, pairs, singles, accumulate, pos, candidates, lo, hi, found);
    }

    /**
     * One vector compare per {@code LANES} slots; its mask, split into long-lane masks, blends the
     * updated states (shift, mask, subtract, max, or: the scalar twin's operations on longs) into
     * the old ones, so no slot costs a branch.
     */
    @Override
    public void recurrences(float[] mass, int n, float threshold, long[] state, int position) {
        ScalarAttentionKernel.checkRecurrenceArgs(mass, n, state, position);
        final int longLanes = L.length();
        final LongVector pos = LongVector.broadcast(L, position);
        final LongVector stamp = LongVector.broadcast(L, (long) position << 32);
        int i = 0;
        if (LANES % longLanes == 0) {
            for (int bound = n - LANES; i <= bound; i += LANES) {
                long bits = FloatVector.fromArray(F, mass, i)
                        .compare(VectorOperators.GE, threshold)
                        .toLong();
                for (int k = 0; k < LANES; k += longLanes) {
                    VectorMask<Long> important = VectorMask.fromLong(L, bits >>> k);
                    LongVector st = LongVector.fromArray(L, state, i + k);
                    LongVector interval = st.and(0xFFFFFFFFL).max(pos.sub(st.lanewise(VectorOperators.LSHR, 32)));
                    st.blend(stamp.or(interval), important).intoArray(state, i + k);
                }
            }
        }
        ScalarAttentionKernel.recurrencesScalar(mass, i, n, threshold, state, position);
    }

    /**
     * {@code dst[dstOff + i] = exp(src[srcOff + i] − sub)} for the {@code LANES} lanes {@code i},
     * with the bits of {@link SoftmaxExp#exp} (the same operations in the same order) in every JIT
     * tier, unlike {@code lanewise(EXP)}, which C2 turns into a vector math library call and the
     * interpreter and C1 into {@code Math.exp} per lane. Arrays in and out: a vector passed to or
     * returned from a call that C2 does not inline is boxed on the heap, and whether C2 inlines a
     * method this size depends on the call site's profile.
     */
    static void expLanes(float[] src, int srcOff, float sub, float[] dst, int dstOff) {
        FloatVector x = FloatVector.fromArray(F, src, srcOff)
                .sub(sub)
                .max(SoftmaxExp.MIN_X)
                .min(SoftmaxExp.MAX_X);
        FloatVector t = x.fma(SoftmaxExp.LOG2E, SoftmaxExp.ROUND);
        FloatVector kf = t.sub(SoftmaxExp.ROUND);
        IntVector n = t.reinterpretAsInts().sub(SoftmaxExp.ROUND_BITS);
        FloatVector r = kf.fma(FloatVector.broadcast(F, -SoftmaxExp.LN2_HI), x);
        r = kf.fma(FloatVector.broadcast(F, -SoftmaxExp.LN2_LO), r);
        FloatVector p = r.fma(SoftmaxExp.C7, SoftmaxExp.C6);
        p = p.fma(r, FloatVector.broadcast(F, SoftmaxExp.C5));
        p = p.fma(r, FloatVector.broadcast(F, SoftmaxExp.C4));
        p = p.fma(r, FloatVector.broadcast(F, SoftmaxExp.C3));
        p = p.fma(r, FloatVector.broadcast(F, SoftmaxExp.C2));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        IntVector n1 = n.lanewise(VectorOperators.ASHR, 1);
        FloatVector s1 = n1.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        FloatVector s2 = n.sub(n1).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        p.mul(s1).mul(s2).intoArray(dst, dstOff);
    }

    @Override
    public void encode(float[] src, int srcOff, MemorySegment dst, long dstOffset, KvDType type, int n) {
        ScalarAttentionKernel.encodeScalar(src, srcOff, dst, dstOffset, type, n);
    }

    @Override
    public void decode(MemorySegment src, long srcOffset, KvDType type, float[] dst, int dstOff, int n) {
        int i = 0;
        int bound = n - LANES;
        switch (type) {
            case F32 -> {
                for (; i <= bound; i += LANES) {
                    FloatVector.fromMemorySegment(F, src, srcOffset + 4L * i, LE)
                            .intoArray(dst, dstOff + i);
                }
            }
            case F16 -> {
                for (; i <= bound; i += LANES) {
                    ((IntVector) ShortVector.fromMemorySegment(S, src, srcOffset + 2L * i, LE)
                                    .convertShape(VectorOperators.S2I, I, 0))
                            .lanewise(VectorOperators.LSHL, 13)
                            .and(0x8FFFE000)
                            .reinterpretAsFloats()
                            .mul(TWO_POW_112)
                            .intoArray(dst, dstOff + i);
                }
            }
            case BF16 -> {
                for (; i <= bound; i += LANES) {
                    ((IntVector) ShortVector.fromMemorySegment(S, src, srcOffset + 2L * i, LE)
                                    .convertShape(VectorOperators.S2I, I, 0))
                            .lanewise(VectorOperators.LSHL, 16)
                            .reinterpretAsFloats()
                            .intoArray(dst, dstOff + i);
                }
            }
        }
        if (i < n) {
            ScalarAttentionKernel.decodeScalar(src, srcOffset + (long) i * type.bytes(), type, dst, dstOff + i, n - i);
        }
    }

    @Override
    public void encodeStrided(
            float[] src, int srcOff, MemorySegment dst, long dstOffset, long strideBytes, KvDType type, int n) {
        ScalarAttentionKernel.INSTANCE.encodeStrided(src, srcOff, dst, dstOffset, strideBytes, type, n);
    }

    @Override
    public void decodeStrided(
            MemorySegment src, long srcOffset, long strideBytes, KvDType type, float[] dst, int dstOff, int n) {
        ScalarAttentionKernel.INSTANCE.decodeStrided(src, srcOffset, strideBytes, type, dst, dstOff, n);
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
        ScalarAttentionKernel.checkRows(keyStride, row, rows);
        final int d = st.headDim;
        final int g = st.group;
        final int block = GroupAttention.BLOCK;
        final int e = type.bytes();
        final long dimStride = (long) keyStride * e;
        final int path = path(type, d, g);
        for (int r0 = 0; r0 < rows; r0 += block) {
            int nb = Math.min(block, rows - r0);
            int r = row + r0;
            long kBase = keyOffset + (long) r * e;
            if ((r & (block - 1)) != 0) {
                // rows across two stored blocks: their values go through the state's scratch block
                scanStraddling(st, page, kBase, keyStride, valueOffset, type, r, nb, firstSlot + r0, path);
                continue;
            }
            long vBase = valueOffset + (long) r * d * e;
            if (rows - r0 >= 2 * block && pairs(st, path)) {
                // two full blocks scored in one pass (pages of 32 tokens or more)
                scanBlockPair(st, page, kBase, vBase, dimStride, type, firstSlot + r0, path);
                r0 += block;
                continue;
            }
            scanBlock(st, page, kBase, keyStride, dimStride, page, vBase, type, nb, firstSlot + r0, path);
        }
    }

    /**
     * One block of {@link #scan} whose rows start inside a stored block, so that their values lie in
     * two: the keys read in place, the values copied into the state's scratch block first (only the
     * first page of a range that starts off a block boundary takes this).
     */
    private void scanStraddling(
            GroupAttention st,
            MemorySegment page,
            long kBase,
            int keyStride,
            long valueOffset,
            KvDType type,
            int r,
            int nb,
            int slot,
            int path) {
        final int e = type.bytes();
        final long dimStride = (long) keyStride * e;
        ValueChunks.copyBlock(page, valueOffset, r, nb, st.valueScratch, st.headDim, e);
        scanBlock(st, page, kBase, keyStride, dimStride, st.valueScratch, 0, type, nb, slot, path);
    }

    /**
     * One block of {@link #scan} by {@code path}: the keys at {@code kBase} of {@code page}, the values
     * at {@code vBase} of {@code vPage} (the page itself, or the state's scratch block).
     */
    private void scanBlock(
            GroupAttention st,
            MemorySegment page,
            long kBase,
            int keyStride,
            long dimStride,
            MemorySegment vPage,
            long vBase,
            KvDType type,
            int nb,
            int slot,
            int path) {
        scoresOf(st, page, kBase, keyStride, dimStride, type, path);
        padLogits(st, nb);
        softmaxBlock(st, nb, slot);
        accumulateOf(st, vPage, vBase, type, nb, path);
    }

    /**
     * Two full key blocks of one page read in place for a group of four or eight heads (decode at GQA
     * group 4 or 8, pages of 32 tokens or more): both blocks' keys scored in one pass per four heads
     * ({@link #scoresF16x4Pair} and its f32 and bf16 twins: each query broadcast feeds two key vectors,
     * eight chains in flight), then each block's softmax and value step as {@link #scanBlock} runs
     * them, so the bits are those of two single-block steps.
     */
    private void scanBlockPair(
            GroupAttention st,
            MemorySegment page,
            long kBase,
            long vBase,
            long dimStride,
            KvDType type,
            int slot,
            int path) {
        final int block = GroupAttention.BLOCK;
        final int g = st.group;
        for (int h = 0; h < g; h += 4) {
            switch (path) {
                case F16_ROWS -> scoresF16x4Pair(st, page, kBase, dimStride, h);
                case F32_ROWS -> scoresF32x4Pair(st, page, kBase, dimStride, h);
                case BF16_ROWS -> scoresBf16x4Pair(st, page, kBase, dimStride, h);
                default -> throw new IllegalStateException("no block pairs on the widen-first path");
            }
        }
        softmaxBlock(st, block, slot);
        accumulateOf(st, page, vBase, type, block, path);
        // the second block's logits, kept in the upper half, become the block's
        for (int j = 0; j < g * block; j += LANES) {
            FloatVector.fromArray(F, st.blockLogits, g * block + j).intoArray(st.blockLogits, j);
        }
        softmaxBlock(st, block, slot + block);
        accumulateOf(st, page, vBase + (long) type.bytes() * block * st.headDim, type, block, path);
    }

    /**
     * Whether two full blocks of this state take {@link #scanBlockPair}: a direct path, one chain per
     * head ({@code unit > 2}) and four or eight heads. Larger groups already keep sixteen chains in
     * flight on one block ({@link #scoresF16x16}).
     */
    private static boolean pairs(GroupAttention st, int path) {
        return path != DECODED && (st.group == 4 || st.group == 8) && st.unit > 2;
    }

    /** One key block's logits into {@code blockLogits} by {@code path}. */
    private void scoresOf(
            GroupAttention st, MemorySegment page, long kBase, int keyStride, long dimStride, KvDType type, int path) {
        switch (path) {
            case F16_ROWS -> scoresF16(st, page, kBase, dimStride);
            case F32_ROWS -> scoresF32(st, page, kBase, dimStride);
            case BF16_ROWS -> scoresBf16(st, page, kBase, dimStride);
            default -> scoresDecoded(st, page, kBase, keyStride, dimStride, type);
        }
    }

    /** One value block's step by {@code path}. */
    private void accumulateOf(GroupAttention st, MemorySegment vPage, long vBase, KvDType type, int nb, int path) {
        switch (path) {
            case F16_ROWS -> accumulateF16(st, vPage, vBase, nb);
            case F32_ROWS -> accumulateF32(st, vPage, vBase, nb);
            case BF16_ROWS -> accumulateBf16(st, vPage, vBase, nb);
            default -> accumulateDecoded(st, vPage, vBase, type, nb);
        }
    }

    /** Lanes {@code nb ..} of every head's block logits to −∞, for a block of fewer than {@code BLOCK} keys. */
    private static void padLogits(GroupAttention st, int nb) {
        final int block = GroupAttention.BLOCK;
        if (nb < block) {
            for (int hh = 0; hh < st.group; hh++) {
                java.util.Arrays.fill(st.blockLogits, hh * block + nb, (hh + 1) * block, Float.NEGATIVE_INFINITY);
            }
        }
    }

    /** {@link #scan}'s value step for one block, with its dispatch (f16, f32 or bf16 rows in place, or decoded). */
    @Override
    public void accumulateValues(
            GroupAttention st, MemorySegment page, long valueOffset, int row, KvDType type, int nb) {
        final int d = st.headDim;
        final int g = st.group;
        final int block = GroupAttention.BLOCK;
        if (nb < 1 || nb > block) {
            throw new IllegalArgumentException("nb " + nb + " out of range [1, " + block + "]");
        }
        ScalarAttentionKernel.checkRow(row);
        final int e = type.bytes();
        MemorySegment vPage = page;
        long vBase = valueOffset + (long) row * d * e;
        if ((row & (block - 1)) != 0) {
            ValueChunks.copyBlock(page, valueOffset, row, nb, st.valueScratch, d, e);
            vPage = st.valueScratch;
            vBase = 0;
        }
        accumulateOf(st, vPage, vBase, type, nb, path(type, d, g));
    }

    /**
     * The value step of a block of any type: the first {@code nb} rows of the block of values at
     * {@code vBase} ({@link ValueChunks} layout) widened chunk by chunk into {@code vBuf}, which has
     * the same layout, then added to the accumulator.
     */
    private void accumulateDecoded(GroupAttention st, MemorySegment vPage, long vBase, KvDType type, int nb) {
        final int d = st.headDim;
        final int g = st.group;
        final int e = type.bytes();
        final int block = GroupAttention.BLOCK;
        if (nb == block) {
            // a whole block: its chunks lie back to back, as in vBuf
            decode(vPage, vBase, type, st.vBuf, 0, block * d);
        } else {
            for (int c0 = 0; c0 < d; c0 += ValueChunks.WIDTH) {
                int w = Math.min(ValueChunks.WIDTH, d - c0);
                decode(vPage, vBase + (long) c0 * block * e, type, st.vBuf, c0 * block, nb * w);
            }
        }
        int h = 0;
        for (; h + 4 <= g; h += 4) {
            accumulate4(st, nb, h);
        }
        for (; h + 2 <= g; h += 2) {
            accumulate2(st, nb, h);
        }
        for (; h < g; h++) {
            accumulate1(st, nb, h);
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
        final long dimStride = (long) keyStride * e;
        final int path = path(type, d, g);
        for (int r0 = 0; r0 < rows; r0 += block) {
            int nb = Math.min(block, rows - r0);
            long kBase = keyOffset + (long) r0 * e;
            scoresOf(st, page, kBase, keyStride, dimStride, type, path);
            for (int h = 0; h < g; h++) {
                System.arraycopy(st.blockLogits, h * block, out, h * outStride + outOffset + r0, nb);
            }
        }
    }

    /** Logits of one f16 key block straight from the page (groups of 1, 2 or a multiple of 4) into {@code blockLogits}. */
    private static void scoresF16(GroupAttention st, MemorySegment page, long kBase, long dimStride) {
        final int g = st.group;
        if (g == 1) {
            scoresF16x1(st, page, kBase, dimStride);
        } else if (g == 2) {
            scoresF16x2(st, page, kBase, dimStride, 0);
        } else if (st.unit <= 2) {
            // rows of one- or two-head tokens keep the two chains per head (even and odd
            // dimensions) of scoresF16x2 and of scores1, which a one-head pass runs
            int h = 0;
            for (; h + 8 <= g; h += 8) {
                scoresF16x8Paired(st, page, kBase, dimStride, h);
            }
            for (; h < g; h += 2) {
                scoresF16x2(st, page, kBase, dimStride, h);
            }
        } else {
            int h = 0;
            for (; h + 16 <= g; h += 16) {
                scoresF16x16(st, page, kBase, dimStride, h);
            }
            for (; h + 8 <= g; h += 8) {
                scoresF16x8(st, page, kBase, dimStride, h);
            }
            for (; h < g; h += 4) {
                scoresF16x4(st, page, kBase, dimStride, h);
            }
        }
    }

    /** Logits of one f32 key block straight from the page, four heads at a time (a group of a multiple of 4), or one or two heads. */
    private static void scoresF32(GroupAttention st, MemorySegment page, long kBase, long dimStride) {
        if (st.group == 1) {
            scoresF32x1(st, page, kBase, dimStride);
            return;
        }
        if (st.group == 2) {
            scoresF32x2(st, page, kBase, dimStride, 0);
            return;
        }
        for (int h = 0; h < st.group; h += 4) {
            scoresF32x4(st, page, kBase, dimStride, h);
        }
    }

    /** The f32 value step, four heads at a time (a group of a multiple of 4), or one or two heads. */
    private static void accumulateF32(GroupAttention st, MemorySegment page, long vBase, int nb) {
        if (st.group == 1) {
            accumulateF32x1(st, page, vBase, nb);
            return;
        }
        if (st.group == 2) {
            accumulateF32x2(st, page, vBase, nb);
            return;
        }
        for (int h = 0; h < st.group; h += 4) {
            accumulateF32x4(st, page, vBase, nb, h);
        }
    }

    /** {@link #scoresF16x2} over f32 keys. */
    private static void scoresF32x2(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int qa = h * d;
        final int qb = qa + d;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        long off = kBase;
        int i = 0;
        for (; i + 1 < d; i += 2, off += 2 * dimStride) {
            FloatVector k0 = f32(page, off);
            FloatVector k1 = f32(page, off + dimStride);
            a0 = k0.fma(FloatVector.broadcast(F, q[qa + i]), a0);
            b0 = k0.fma(FloatVector.broadcast(F, q[qb + i]), b0);
            a1 = k1.fma(FloatVector.broadcast(F, q[qa + i + 1]), a1);
            b1 = k1.fma(FloatVector.broadcast(F, q[qb + i + 1]), b1);
        }
        if (i < d) {
            FloatVector k0 = f32(page, off);
            a0 = k0.fma(FloatVector.broadcast(F, q[qa + i]), a0);
            b0 = k0.fma(FloatVector.broadcast(F, q[qb + i]), b0);
        }
        a0.add(a1).intoArray(st.blockLogits, h * GroupAttention.BLOCK);
        b0.add(b1).intoArray(st.blockLogits, (h + 1) * GroupAttention.BLOCK);
    }

    /** {@link #accumulateF16x2} over f32 values. */
    private static void accumulateF32x2(GroupAttention st, MemorySegment page, long vBase, int nb) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        for (int i = 0; i < d; i += LANES) {
            FloatVector a0 = FloatVector.fromArray(F, acc, i);
            FloatVector a1 = FloatVector.fromArray(F, acc, i + d);
            long off = vBase + 4L * ValueChunks.element(d, 0, i);
            long step = 4L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = f32(page, off);
                a0 = x.fma(FloatVector.broadcast(F, p[j]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[block + j]), a1);
            }
            a0.intoArray(acc, i);
            a1.intoArray(acc, i + d);
        }
    }

    /** {@link #scoresF16x1} over f32 keys. */
    private static void scoresF32x1(GroupAttention st, MemorySegment page, long kBase, long dimStride) {
        final int d = st.headDim;
        final float[] q = st.q;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i += 2, off += 2 * dimStride) {
            a0 = f32(page, off).fma(FloatVector.broadcast(F, q[i]), a0);
            a1 = f32(page, off + dimStride).fma(FloatVector.broadcast(F, q[i + 1]), a1);
        }
        a0.add(a1).intoArray(st.blockLogits, 0);
    }

    /** {@link #accumulateF16x1} over f32 values. */
    private static void accumulateF32x1(GroupAttention st, MemorySegment page, long vBase, int nb) {
        final int d = st.headDim;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        for (int i = 0; i < d; i += LANES) {
            FloatVector a = FloatVector.fromArray(F, acc, i);
            long off = vBase + 4L * ValueChunks.element(d, 0, i);
            long step = 4L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                a = f32(page, off).fma(FloatVector.broadcast(F, p[j]), a);
            }
            a.intoArray(acc, i);
        }
    }

    /** {@link #scoresF16x4} over f32 keys. */
    private static void scoresF32x4(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int q0 = h * d;
        final int q1 = q0 + d;
        final int q2 = q1 + d;
        final int q3 = q2 + d;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i++, off += dimStride) {
            FloatVector k = f32(page, off);
            a0 = k.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
            a1 = k.fma(FloatVector.broadcast(F, q[q1 + i]), a1);
            a2 = k.fma(FloatVector.broadcast(F, q[q2 + i]), a2);
            a3 = k.fma(FloatVector.broadcast(F, q[q3 + i]), a3);
        }
        int base = h * GroupAttention.BLOCK;
        a0.intoArray(st.blockLogits, base);
        a1.intoArray(st.blockLogits, base + GroupAttention.BLOCK);
        a2.intoArray(st.blockLogits, base + 2 * GroupAttention.BLOCK);
        a3.intoArray(st.blockLogits, base + 3 * GroupAttention.BLOCK);
    }

    /** {@link #scoresF16x4Pair} over f32 keys. */
    private static void scoresF32x4Pair(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] q = st.q;
        final int q0 = h * d;
        final int lo = h * block;
        final int hi = (st.group + h) * block;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector b2 = FloatVector.zero(F);
        FloatVector b3 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i++, off += dimStride) {
            FloatVector k = f32(page, off);
            FloatVector kk = f32(page, off + 4L * block);
            FloatVector x0 = FloatVector.broadcast(F, q[q0 + i]);
            FloatVector x1 = FloatVector.broadcast(F, q[q0 + d + i]);
            FloatVector x2 = FloatVector.broadcast(F, q[q0 + 2 * d + i]);
            FloatVector x3 = FloatVector.broadcast(F, q[q0 + 3 * d + i]);
            a0 = k.fma(x0, a0);
            a1 = k.fma(x1, a1);
            a2 = k.fma(x2, a2);
            a3 = k.fma(x3, a3);
            b0 = kk.fma(x0, b0);
            b1 = kk.fma(x1, b1);
            b2 = kk.fma(x2, b2);
            b3 = kk.fma(x3, b3);
        }
        a0.intoArray(st.blockLogits, lo);
        a1.intoArray(st.blockLogits, lo + block);
        a2.intoArray(st.blockLogits, lo + 2 * block);
        a3.intoArray(st.blockLogits, lo + 3 * block);
        b0.intoArray(st.blockLogits, hi);
        b1.intoArray(st.blockLogits, hi + block);
        b2.intoArray(st.blockLogits, hi + 2 * block);
        b3.intoArray(st.blockLogits, hi + 3 * block);
    }

    /** {@link #accumulateF16x4} over f32 values. */
    private static void accumulateF32x4(GroupAttention st, MemorySegment page, long vBase, int nb, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        final int p0 = h * block;
        int i0 = 0;
        for (; i0 + 2 * LANES <= d; i0 += 2 * LANES) {
            int o0 = h * d + i0;
            int o1 = o0 + LANES;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            FloatVector b0 = FloatVector.fromArray(F, acc, o1);
            FloatVector b1 = FloatVector.fromArray(F, acc, o1 + d);
            FloatVector b2 = FloatVector.fromArray(F, acc, o1 + 2 * d);
            FloatVector b3 = FloatVector.fromArray(F, acc, o1 + 3 * d);
            long off = vBase + 4L * ValueChunks.element(d, 0, i0);
            long step = 4L * ValueChunks.width(d, i0);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = f32(page, off);
                FloatVector y = f32(page, off + 4L * LANES);
                FloatVector w0 = FloatVector.broadcast(F, p[p0 + j]);
                FloatVector w1 = FloatVector.broadcast(F, p[p0 + block + j]);
                FloatVector w2 = FloatVector.broadcast(F, p[p0 + 2 * block + j]);
                FloatVector w3 = FloatVector.broadcast(F, p[p0 + 3 * block + j]);
                a0 = x.fma(w0, a0);
                a1 = x.fma(w1, a1);
                a2 = x.fma(w2, a2);
                a3 = x.fma(w3, a3);
                b0 = y.fma(w0, b0);
                b1 = y.fma(w1, b1);
                b2 = y.fma(w2, b2);
                b3 = y.fma(w3, b3);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
            b0.intoArray(acc, o1);
            b1.intoArray(acc, o1 + d);
            b2.intoArray(acc, o1 + 2 * d);
            b3.intoArray(acc, o1 + 3 * d);
        }
        for (int i = i0; i < d; i += LANES) {
            int o0 = h * d + i;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            long off = vBase + 4L * ValueChunks.element(d, 0, i);
            long step = 4L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = f32(page, off);
                a0 = x.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[p0 + block + j]), a1);
                a2 = x.fma(FloatVector.broadcast(F, p[p0 + 2 * block + j]), a2);
                a3 = x.fma(FloatVector.broadcast(F, p[p0 + 3 * block + j]), a3);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
        }
    }

    /** Logits of one bf16 key block straight from the page, four heads at a time, or one or two heads. */
    private static void scoresBf16(GroupAttention st, MemorySegment page, long kBase, long dimStride) {
        if (st.group == 1) {
            scoresBf16x1(st, page, kBase, dimStride);
            return;
        }
        if (st.group == 2) {
            scoresBf16x2(st, page, kBase, dimStride, 0);
            return;
        }
        for (int h = 0; h < st.group; h += 4) {
            scoresBf16x4(st, page, kBase, dimStride, h);
        }
    }

    /** The bf16 value step, four heads at a time, or one or two heads. */
    private static void accumulateBf16(GroupAttention st, MemorySegment page, long vBase, int nb) {
        if (st.group == 1) {
            accumulateBf16x1(st, page, vBase, nb);
            return;
        }
        if (st.group == 2) {
            accumulateBf16x2(st, page, vBase, nb);
            return;
        }
        for (int h = 0; h < st.group; h += 4) {
            accumulateBf16x4(st, page, vBase, nb, h);
        }
    }

    /** {@link #scoresF16x2} over bf16 keys. */
    private static void scoresBf16x2(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int qa = h * d;
        final int qb = qa + d;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        long off = kBase;
        int i = 0;
        for (; i + 1 < d; i += 2, off += 2 * dimStride) {
            FloatVector k0 = bf16(page, off);
            FloatVector k1 = bf16(page, off + dimStride);
            a0 = k0.fma(FloatVector.broadcast(F, q[qa + i]), a0);
            b0 = k0.fma(FloatVector.broadcast(F, q[qb + i]), b0);
            a1 = k1.fma(FloatVector.broadcast(F, q[qa + i + 1]), a1);
            b1 = k1.fma(FloatVector.broadcast(F, q[qb + i + 1]), b1);
        }
        if (i < d) {
            FloatVector k0 = bf16(page, off);
            a0 = k0.fma(FloatVector.broadcast(F, q[qa + i]), a0);
            b0 = k0.fma(FloatVector.broadcast(F, q[qb + i]), b0);
        }
        a0.add(a1).intoArray(st.blockLogits, h * GroupAttention.BLOCK);
        b0.add(b1).intoArray(st.blockLogits, (h + 1) * GroupAttention.BLOCK);
    }

    /** {@link #accumulateF16x2} over bf16 values. */
    private static void accumulateBf16x2(GroupAttention st, MemorySegment page, long vBase, int nb) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        for (int i = 0; i < d; i += LANES) {
            FloatVector a0 = FloatVector.fromArray(F, acc, i);
            FloatVector a1 = FloatVector.fromArray(F, acc, i + d);
            long off = vBase + 2L * ValueChunks.element(d, 0, i);
            long step = 2L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = bf16(page, off);
                a0 = x.fma(FloatVector.broadcast(F, p[j]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[block + j]), a1);
            }
            a0.intoArray(acc, i);
            a1.intoArray(acc, i + d);
        }
    }

    /** {@link #scoresF16x1} over bf16 keys. */
    private static void scoresBf16x1(GroupAttention st, MemorySegment page, long kBase, long dimStride) {
        final int d = st.headDim;
        final float[] q = st.q;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i += 2, off += 2 * dimStride) {
            a0 = bf16(page, off).fma(FloatVector.broadcast(F, q[i]), a0);
            a1 = bf16(page, off + dimStride).fma(FloatVector.broadcast(F, q[i + 1]), a1);
        }
        a0.add(a1).intoArray(st.blockLogits, 0);
    }

    /** {@link #accumulateF16x1} over bf16 values. */
    private static void accumulateBf16x1(GroupAttention st, MemorySegment page, long vBase, int nb) {
        final int d = st.headDim;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        for (int i = 0; i < d; i += LANES) {
            FloatVector a = FloatVector.fromArray(F, acc, i);
            long off = vBase + 2L * ValueChunks.element(d, 0, i);
            long step = 2L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                a = bf16(page, off).fma(FloatVector.broadcast(F, p[j]), a);
            }
            a.intoArray(acc, i);
        }
    }

    /** {@link #scoresF16x4} over bf16 keys. */
    private static void scoresBf16x4(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int q0 = h * d;
        final int q1 = q0 + d;
        final int q2 = q1 + d;
        final int q3 = q2 + d;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i++, off += dimStride) {
            FloatVector k = bf16(page, off);
            a0 = k.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
            a1 = k.fma(FloatVector.broadcast(F, q[q1 + i]), a1);
            a2 = k.fma(FloatVector.broadcast(F, q[q2 + i]), a2);
            a3 = k.fma(FloatVector.broadcast(F, q[q3 + i]), a3);
        }
        int base = h * GroupAttention.BLOCK;
        a0.intoArray(st.blockLogits, base);
        a1.intoArray(st.blockLogits, base + GroupAttention.BLOCK);
        a2.intoArray(st.blockLogits, base + 2 * GroupAttention.BLOCK);
        a3.intoArray(st.blockLogits, base + 3 * GroupAttention.BLOCK);
    }

    /** {@link #scoresF16x4Pair} over bf16 keys. */
    private static void scoresBf16x4Pair(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] q = st.q;
        final int q0 = h * d;
        final int lo = h * block;
        final int hi = (st.group + h) * block;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector b2 = FloatVector.zero(F);
        FloatVector b3 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i++, off += dimStride) {
            FloatVector k = bf16(page, off);
            FloatVector kk = bf16(page, off + 2L * block);
            FloatVector x0 = FloatVector.broadcast(F, q[q0 + i]);
            FloatVector x1 = FloatVector.broadcast(F, q[q0 + d + i]);
            FloatVector x2 = FloatVector.broadcast(F, q[q0 + 2 * d + i]);
            FloatVector x3 = FloatVector.broadcast(F, q[q0 + 3 * d + i]);
            a0 = k.fma(x0, a0);
            a1 = k.fma(x1, a1);
            a2 = k.fma(x2, a2);
            a3 = k.fma(x3, a3);
            b0 = kk.fma(x0, b0);
            b1 = kk.fma(x1, b1);
            b2 = kk.fma(x2, b2);
            b3 = kk.fma(x3, b3);
        }
        a0.intoArray(st.blockLogits, lo);
        a1.intoArray(st.blockLogits, lo + block);
        a2.intoArray(st.blockLogits, lo + 2 * block);
        a3.intoArray(st.blockLogits, lo + 3 * block);
        b0.intoArray(st.blockLogits, hi);
        b1.intoArray(st.blockLogits, hi + block);
        b2.intoArray(st.blockLogits, hi + 2 * block);
        b3.intoArray(st.blockLogits, hi + 3 * block);
    }

    /** {@link #accumulateF16x4} over bf16 values. */
    private static void accumulateBf16x4(GroupAttention st, MemorySegment page, long vBase, int nb, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        final int p0 = h * block;
        int i0 = 0;
        for (; i0 + 2 * LANES <= d; i0 += 2 * LANES) {
            int o0 = h * d + i0;
            int o1 = o0 + LANES;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            FloatVector b0 = FloatVector.fromArray(F, acc, o1);
            FloatVector b1 = FloatVector.fromArray(F, acc, o1 + d);
            FloatVector b2 = FloatVector.fromArray(F, acc, o1 + 2 * d);
            FloatVector b3 = FloatVector.fromArray(F, acc, o1 + 3 * d);
            long off = vBase + 2L * ValueChunks.element(d, 0, i0);
            long step = 2L * ValueChunks.width(d, i0);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = bf16(page, off);
                FloatVector y = bf16(page, off + 2L * LANES);
                FloatVector w0 = FloatVector.broadcast(F, p[p0 + j]);
                FloatVector w1 = FloatVector.broadcast(F, p[p0 + block + j]);
                FloatVector w2 = FloatVector.broadcast(F, p[p0 + 2 * block + j]);
                FloatVector w3 = FloatVector.broadcast(F, p[p0 + 3 * block + j]);
                a0 = x.fma(w0, a0);
                a1 = x.fma(w1, a1);
                a2 = x.fma(w2, a2);
                a3 = x.fma(w3, a3);
                b0 = y.fma(w0, b0);
                b1 = y.fma(w1, b1);
                b2 = y.fma(w2, b2);
                b3 = y.fma(w3, b3);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
            b0.intoArray(acc, o1);
            b1.intoArray(acc, o1 + d);
            b2.intoArray(acc, o1 + 2 * d);
            b3.intoArray(acc, o1 + 3 * d);
        }
        for (int i = i0; i < d; i += LANES) {
            int o0 = h * d + i;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            long off = vBase + 2L * ValueChunks.element(d, 0, i);
            long step = 2L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = bf16(page, off);
                a0 = x.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[p0 + block + j]), a1);
                a2 = x.fma(FloatVector.broadcast(F, p[p0 + 2 * block + j]), a2);
                a3 = x.fma(FloatVector.broadcast(F, p[p0 + 3 * block + j]), a3);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
        }
    }

    /** Logits of one key block of any type, widened into {@code kBuf} first, into {@code blockLogits}. */
    private void scoresDecoded(
            GroupAttention st, MemorySegment page, long kBase, int keyStride, long dimStride, KvDType type) {
        final int d = st.headDim;
        final int g = st.group;
        final int block = GroupAttention.BLOCK;
        if (keyStride == block) {
            decode(page, kBase, type, st.kBuf, 0, d * block);
        } else if (LANES == block) {
            widenBlockColumns(page, kBase, dimStride, type, st.kBuf, d);
        } else {
            for (int i = 0; i < d; i++) {
                decode(page, kBase + i * dimStride, type, st.kBuf, i * block, block);
            }
        }
        int h = 0;
        for (; h + 4 <= g; h += 4) {
            scores4(st, h);
        }
        for (; h + 2 <= g; h += 2) {
            scores2(st, h);
        }
        for (; h < g; h++) {
            scores1(st, h);
        }
    }

    /**
     * One key block of a page that holds several ({@code dimStride} bytes between a dimension's
     * blocks): dimension {@code i}'s {@code BLOCK = LANES} keys widened into {@code kBuf[i·BLOCK ..]},
     * one vector per dimension in one loop per type, as {@link #decode} widens them (the same
     * operations, so the same bits) without a call and a type switch per dimension.
     */
    private static void widenBlockColumns(
            MemorySegment page, long kBase, long dimStride, KvDType type, float[] kBuf, int d) {
        long off = kBase;
        switch (type) {
            case F32 -> {
                for (int i = 0; i < d; i++, off += dimStride) {
                    FloatVector.fromMemorySegment(F, page, off, LE).intoArray(kBuf, i * LANES);
                }
            }
            case F16 -> {
                for (int i = 0; i < d; i++, off += dimStride) {
                    f16(page, off).intoArray(kBuf, i * LANES);
                }
            }
            case BF16 -> {
                for (int i = 0; i < d; i++, off += dimStride) {
                    ((IntVector) ShortVector.fromMemorySegment(S, page, off, LE)
                                    .convertShape(VectorOperators.S2I, I, 0))
                            .lanewise(VectorOperators.LSHL, 16)
                            .reinterpretAsFloats()
                            .intoArray(kBuf, i * LANES);
                }
            }
        }
    }

    /** {@link #path}: keys and values widened into {@code kBuf}/{@code vBuf} first. */
    private static final int DECODED = 0;
    /** {@link #path}: f16 blocks read straight from the page ({@code *F16*} kernels). */
    private static final int F16_ROWS = 1;
    /** {@link #path}: f32 blocks read straight from the page ({@code *F32*} kernels). */
    private static final int F32_ROWS = 2;
    /** {@link #path}: bf16 blocks read straight from the page ({@code *Bf16*} kernels). */
    private static final int BF16_ROWS = 3;

    /**
     * How a block of {@code type} is read, for head dim {@code d} and {@code g} rows: f16 straight
     * from the page for 16-lane vectors, {@code d} a multiple of 16 and groups of 1, 2 or a multiple
     * of 4; f32 and bf16 likewise for groups of 1, 2 or a multiple of 4; anything else widened into scratch
     * first. All take each lane's sum in the same order, so they give the same bits.
     *
     * <p>The f16, f32 and bf16 kernels are separate methods, each calling one single-type load helper. A
     * shared kernel with a type test at each load, once C2 had compiled it with both types in its
     * profile, passed C2's node-count cutoff for inlining (the two-block key step has four load
     * sites); the load helpers were then called, not inlined, and every vector they returned was
     * boxed: gigabytes per second on the decode path after a JVM had attended both types
     * ({@code PagedKvCacheTest.decodeStepsAllocateNothing} attends every type before it measures).
     */
    private static int path(KvDType type, int d, int g) {
        if (LANES != GroupAttention.BLOCK || d % LANES != 0) {
            return DECODED;
        }
        if (type == F16 && (g <= 2 || g % 4 == 0)) {
            return F16_ROWS;
        }
        if (g > 2 && g % 4 != 0) {
            return DECODED;
        }
        return type == F32 ? F32_ROWS : type == KvDType.BF16 ? BF16_ROWS : DECODED;
    }

    /** {@code LANES} f32 values at {@code at}. */
    private static FloatVector f32(MemorySegment page, long at) {
        return FloatVector.fromMemorySegment(F, page, at, LE);
    }

    /** {@code LANES} bfloat16 values at {@code at}, widened exactly (each the upper half of a float). */
    private static FloatVector bf16(MemorySegment page, long at) {
        return ((IntVector) ShortVector.fromMemorySegment(S, page, at, LE).convertShape(VectorOperators.S2I, I, 0))
                .lanewise(VectorOperators.LSHL, 16)
                .reinterpretAsFloats();
    }

    /** {@code LANES} binary16 values at {@code at}, widened exactly (finite inputs; see {@link #decode}). */
    private static FloatVector f16(MemorySegment page, long at) {
        return ((IntVector) ShortVector.fromMemorySegment(S, page, at, LE).convertShape(VectorOperators.S2I, I, 0))
                .lanewise(VectorOperators.LSHL, 13)
                .and(0x8FFFE000)
                .reinterpretAsFloats()
                .mul(TWO_POW_112);
    }

    /**
     * A one-head group (multi-head attention) read in place: {@link #scores1} over the page's f16 keys,
     * two chains (even and odd dimensions) added at the end, so the bits are those of the widen-first
     * path.
     */
    private static void scoresF16x1(GroupAttention st, MemorySegment page, long kBase, long dimStride) {
        final int d = st.headDim;
        final float[] q = st.q;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i += 2, off += 2 * dimStride) {
            a0 = f16(page, off).fma(FloatVector.broadcast(F, q[i]), a0);
            a1 = f16(page, off + dimStride).fma(FloatVector.broadcast(F, q[i + 1]), a1);
        }
        a0.add(a1).intoArray(st.blockLogits, 0);
    }

    /**
     * {@link #accumulate1} over the page's f16 values for a one-head group: each lane's sum taken over
     * the block's tokens in order.
     */
    private static void accumulateF16x1(GroupAttention st, MemorySegment page, long vBase, int nb) {
        final int d = st.headDim;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        for (int i = 0; i < d; i += LANES) {
            FloatVector a = FloatVector.fromArray(F, acc, i);
            long off = vBase + 2L * ValueChunks.element(d, 0, i);
            long step = 2L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                a = f16(page, off).fma(FloatVector.broadcast(F, p[j]), a);
            }
            a.intoArray(acc, i);
        }
    }

    /** Heads {@code h} and {@code h + 1}: two chains per head (even and odd dimensions), added at the end. */
    private static void scoresF16x2(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int qa = h * d;
        final int qb = qa + d;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        long off = kBase;
        int i = 0;
        for (; i + 1 < d; i += 2, off += 2 * dimStride) {
            FloatVector k0 = f16(page, off);
            FloatVector k1 = f16(page, off + dimStride);
            a0 = k0.fma(FloatVector.broadcast(F, q[qa + i]), a0);
            b0 = k0.fma(FloatVector.broadcast(F, q[qb + i]), b0);
            a1 = k1.fma(FloatVector.broadcast(F, q[qa + i + 1]), a1);
            b1 = k1.fma(FloatVector.broadcast(F, q[qb + i + 1]), b1);
        }
        if (i < d) {
            FloatVector k0 = f16(page, off);
            a0 = k0.fma(FloatVector.broadcast(F, q[qa + i]), a0);
            b0 = k0.fma(FloatVector.broadcast(F, q[qb + i]), b0);
        }
        a0.add(a1).intoArray(st.blockLogits, h * GroupAttention.BLOCK);
        b0.add(b1).intoArray(st.blockLogits, (h + 1) * GroupAttention.BLOCK);
    }

    private static void scoresF16x4(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int q0 = h * d;
        final int q1 = q0 + d;
        final int q2 = q1 + d;
        final int q3 = q2 + d;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i++, off += dimStride) {
            FloatVector k = f16(page, off);
            a0 = k.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
            a1 = k.fma(FloatVector.broadcast(F, q[q1 + i]), a1);
            a2 = k.fma(FloatVector.broadcast(F, q[q2 + i]), a2);
            a3 = k.fma(FloatVector.broadcast(F, q[q3 + i]), a3);
        }
        int base = h * GroupAttention.BLOCK;
        a0.intoArray(st.blockLogits, base);
        a1.intoArray(st.blockLogits, base + GroupAttention.BLOCK);
        a2.intoArray(st.blockLogits, base + 2 * GroupAttention.BLOCK);
        a3.intoArray(st.blockLogits, base + 3 * GroupAttention.BLOCK);
    }

    /**
     * {@link #scoresF16x4} for heads {@code h .. h+3} over two consecutive key blocks of a page at
     * once (dimension {@code i} of the first at {@code kBase + i·dimStride}, of the second {@code
     * BLOCK} elements further, so with 32-token pages one cache line holds both): the first block's
     * logits into {@code blockLogits} from {@code h·BLOCK}, the second's from {@code (group +
     * h)·BLOCK}.
     */
    private static void scoresF16x4Pair(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] q = st.q;
        final int q0 = h * d;
        final int lo = h * block;
        final int hi = (st.group + h) * block;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector b2 = FloatVector.zero(F);
        FloatVector b3 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i++, off += dimStride) {
            FloatVector k = f16(page, off);
            FloatVector kk = f16(page, off + 2L * block);
            FloatVector x0 = FloatVector.broadcast(F, q[q0 + i]);
            FloatVector x1 = FloatVector.broadcast(F, q[q0 + d + i]);
            FloatVector x2 = FloatVector.broadcast(F, q[q0 + 2 * d + i]);
            FloatVector x3 = FloatVector.broadcast(F, q[q0 + 3 * d + i]);
            a0 = k.fma(x0, a0);
            a1 = k.fma(x1, a1);
            a2 = k.fma(x2, a2);
            a3 = k.fma(x3, a3);
            b0 = kk.fma(x0, b0);
            b1 = kk.fma(x1, b1);
            b2 = kk.fma(x2, b2);
            b3 = kk.fma(x3, b3);
        }
        a0.intoArray(st.blockLogits, lo);
        a1.intoArray(st.blockLogits, lo + block);
        a2.intoArray(st.blockLogits, lo + 2 * block);
        a3.intoArray(st.blockLogits, lo + 3 * block);
        b0.intoArray(st.blockLogits, hi);
        b1.intoArray(st.blockLogits, hi + block);
        b2.intoArray(st.blockLogits, hi + 2 * block);
        b3.intoArray(st.blockLogits, hi + 3 * block);
    }

    /**
     * Heads {@code h .. h+8} with one chain each, as {@link #scoresF16x4} computes them: each key
     * vector is widened once for eight heads (a prefill tile of two four-head tokens, or one token
     * of a group of eight).
     */
    private static void scoresF16x8(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int q0 = h * d;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector a4 = FloatVector.zero(F);
        FloatVector a5 = FloatVector.zero(F);
        FloatVector a6 = FloatVector.zero(F);
        FloatVector a7 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i++, off += dimStride) {
            FloatVector k = f16(page, off);
            int qi = q0 + i;
            a0 = k.fma(FloatVector.broadcast(F, q[qi]), a0);
            a1 = k.fma(FloatVector.broadcast(F, q[qi + d]), a1);
            a2 = k.fma(FloatVector.broadcast(F, q[qi + 2 * d]), a2);
            a3 = k.fma(FloatVector.broadcast(F, q[qi + 3 * d]), a3);
            a4 = k.fma(FloatVector.broadcast(F, q[qi + 4 * d]), a4);
            a5 = k.fma(FloatVector.broadcast(F, q[qi + 5 * d]), a5);
            a6 = k.fma(FloatVector.broadcast(F, q[qi + 6 * d]), a6);
            a7 = k.fma(FloatVector.broadcast(F, q[qi + 7 * d]), a7);
        }
        final int block = GroupAttention.BLOCK;
        int base = h * block;
        a0.intoArray(st.blockLogits, base);
        a1.intoArray(st.blockLogits, base + block);
        a2.intoArray(st.blockLogits, base + 2 * block);
        a3.intoArray(st.blockLogits, base + 3 * block);
        a4.intoArray(st.blockLogits, base + 4 * block);
        a5.intoArray(st.blockLogits, base + 5 * block);
        a6.intoArray(st.blockLogits, base + 6 * block);
        a7.intoArray(st.blockLogits, base + 7 * block);
    }

    /**
     * Heads {@code h .. h+8} of two-head tokens (a prefill tile of four), with {@link
     * #scoresF16x2}'s two chains per head, so each head's logits have the bits of a two-head pass;
     * each pair of key vectors is widened once for the eight heads.
     */
    private static void scoresF16x8Paired(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int q0 = h * d;
        FloatVector a0 = FloatVector.zero(F), b0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F), b1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F), b2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F), b3 = FloatVector.zero(F);
        FloatVector a4 = FloatVector.zero(F), b4 = FloatVector.zero(F);
        FloatVector a5 = FloatVector.zero(F), b5 = FloatVector.zero(F);
        FloatVector a6 = FloatVector.zero(F), b6 = FloatVector.zero(F);
        FloatVector a7 = FloatVector.zero(F), b7 = FloatVector.zero(F);
        long off = kBase;
        int i = 0;
        for (; i + 1 < d; i += 2, off += 2 * dimStride) {
            FloatVector k0 = f16(page, off);
            FloatVector k1 = f16(page, off + dimStride);
            int qi = q0 + i;
            a0 = k0.fma(FloatVector.broadcast(F, q[qi]), a0);
            b0 = k1.fma(FloatVector.broadcast(F, q[qi + 1]), b0);
            a1 = k0.fma(FloatVector.broadcast(F, q[qi + d]), a1);
            b1 = k1.fma(FloatVector.broadcast(F, q[qi + d + 1]), b1);
            a2 = k0.fma(FloatVector.broadcast(F, q[qi + 2 * d]), a2);
            b2 = k1.fma(FloatVector.broadcast(F, q[qi + 2 * d + 1]), b2);
            a3 = k0.fma(FloatVector.broadcast(F, q[qi + 3 * d]), a3);
            b3 = k1.fma(FloatVector.broadcast(F, q[qi + 3 * d + 1]), b3);
            a4 = k0.fma(FloatVector.broadcast(F, q[qi + 4 * d]), a4);
            b4 = k1.fma(FloatVector.broadcast(F, q[qi + 4 * d + 1]), b4);
            a5 = k0.fma(FloatVector.broadcast(F, q[qi + 5 * d]), a5);
            b5 = k1.fma(FloatVector.broadcast(F, q[qi + 5 * d + 1]), b5);
            a6 = k0.fma(FloatVector.broadcast(F, q[qi + 6 * d]), a6);
            b6 = k1.fma(FloatVector.broadcast(F, q[qi + 6 * d + 1]), b6);
            a7 = k0.fma(FloatVector.broadcast(F, q[qi + 7 * d]), a7);
            b7 = k1.fma(FloatVector.broadcast(F, q[qi + 7 * d + 1]), b7);
        }
        if (i < d) {
            FloatVector k0 = f16(page, off);
            int qi = q0 + i;
            a0 = k0.fma(FloatVector.broadcast(F, q[qi]), a0);
            a1 = k0.fma(FloatVector.broadcast(F, q[qi + d]), a1);
            a2 = k0.fma(FloatVector.broadcast(F, q[qi + 2 * d]), a2);
            a3 = k0.fma(FloatVector.broadcast(F, q[qi + 3 * d]), a3);
            a4 = k0.fma(FloatVector.broadcast(F, q[qi + 4 * d]), a4);
            a5 = k0.fma(FloatVector.broadcast(F, q[qi + 5 * d]), a5);
            a6 = k0.fma(FloatVector.broadcast(F, q[qi + 6 * d]), a6);
            a7 = k0.fma(FloatVector.broadcast(F, q[qi + 7 * d]), a7);
        }
        final int block = GroupAttention.BLOCK;
        int base = h * block;
        a0.add(b0).intoArray(st.blockLogits, base);
        a1.add(b1).intoArray(st.blockLogits, base + block);
        a2.add(b2).intoArray(st.blockLogits, base + 2 * block);
        a3.add(b3).intoArray(st.blockLogits, base + 3 * block);
        a4.add(b4).intoArray(st.blockLogits, base + 4 * block);
        a5.add(b5).intoArray(st.blockLogits, base + 5 * block);
        a6.add(b6).intoArray(st.blockLogits, base + 6 * block);
        a7.add(b7).intoArray(st.blockLogits, base + 7 * block);
    }

    /**
     * Heads {@code h .. h+16} with one chain each, as {@link #scoresF16x4} computes them: each key
     * vector is widened once for sixteen heads (a prefill tile of four four-head tokens).
     */
    private static void scoresF16x16(GroupAttention st, MemorySegment page, long kBase, long dimStride, int h) {
        final int d = st.headDim;
        final float[] q = st.q;
        final int q0 = h * d;
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector a4 = FloatVector.zero(F);
        FloatVector a5 = FloatVector.zero(F);
        FloatVector a6 = FloatVector.zero(F);
        FloatVector a7 = FloatVector.zero(F);
        FloatVector a8 = FloatVector.zero(F);
        FloatVector a9 = FloatVector.zero(F);
        FloatVector a10 = FloatVector.zero(F);
        FloatVector a11 = FloatVector.zero(F);
        FloatVector a12 = FloatVector.zero(F);
        FloatVector a13 = FloatVector.zero(F);
        FloatVector a14 = FloatVector.zero(F);
        FloatVector a15 = FloatVector.zero(F);
        long off = kBase;
        for (int i = 0; i < d; i++, off += dimStride) {
            FloatVector k = f16(page, off);
            int qi = q0 + i;
            a0 = k.fma(FloatVector.broadcast(F, q[qi]), a0);
            a1 = k.fma(FloatVector.broadcast(F, q[qi + d]), a1);
            a2 = k.fma(FloatVector.broadcast(F, q[qi + 2 * d]), a2);
            a3 = k.fma(FloatVector.broadcast(F, q[qi + 3 * d]), a3);
            a4 = k.fma(FloatVector.broadcast(F, q[qi + 4 * d]), a4);
            a5 = k.fma(FloatVector.broadcast(F, q[qi + 5 * d]), a5);
            a6 = k.fma(FloatVector.broadcast(F, q[qi + 6 * d]), a6);
            a7 = k.fma(FloatVector.broadcast(F, q[qi + 7 * d]), a7);
            a8 = k.fma(FloatVector.broadcast(F, q[qi + 8 * d]), a8);
            a9 = k.fma(FloatVector.broadcast(F, q[qi + 9 * d]), a9);
            a10 = k.fma(FloatVector.broadcast(F, q[qi + 10 * d]), a10);
            a11 = k.fma(FloatVector.broadcast(F, q[qi + 11 * d]), a11);
            a12 = k.fma(FloatVector.broadcast(F, q[qi + 12 * d]), a12);
            a13 = k.fma(FloatVector.broadcast(F, q[qi + 13 * d]), a13);
            a14 = k.fma(FloatVector.broadcast(F, q[qi + 14 * d]), a14);
            a15 = k.fma(FloatVector.broadcast(F, q[qi + 15 * d]), a15);
        }
        final int block = GroupAttention.BLOCK;
        int base = h * block;
        a0.intoArray(st.blockLogits, base);
        a1.intoArray(st.blockLogits, base + block);
        a2.intoArray(st.blockLogits, base + 2 * block);
        a3.intoArray(st.blockLogits, base + 3 * block);
        a4.intoArray(st.blockLogits, base + 4 * block);
        a5.intoArray(st.blockLogits, base + 5 * block);
        a6.intoArray(st.blockLogits, base + 6 * block);
        a7.intoArray(st.blockLogits, base + 7 * block);
        a8.intoArray(st.blockLogits, base + 8 * block);
        a9.intoArray(st.blockLogits, base + 9 * block);
        a10.intoArray(st.blockLogits, base + 10 * block);
        a11.intoArray(st.blockLogits, base + 11 * block);
        a12.intoArray(st.blockLogits, base + 12 * block);
        a13.intoArray(st.blockLogits, base + 13 * block);
        a14.intoArray(st.blockLogits, base + 14 * block);
        a15.intoArray(st.blockLogits, base + 15 * block);
    }

    /** {@link #accumulateF16x4} for heads {@code h .. h+16}: each value vector widened once for sixteen heads. */
    private static void accumulateF16x16(GroupAttention st, MemorySegment page, long vBase, int nb, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        final int p0 = h * block;
        for (int i = 0; i < d; i += LANES) {
            int o0 = h * d + i;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            FloatVector a4 = FloatVector.fromArray(F, acc, o0 + 4 * d);
            FloatVector a5 = FloatVector.fromArray(F, acc, o0 + 5 * d);
            FloatVector a6 = FloatVector.fromArray(F, acc, o0 + 6 * d);
            FloatVector a7 = FloatVector.fromArray(F, acc, o0 + 7 * d);
            FloatVector a8 = FloatVector.fromArray(F, acc, o0 + 8 * d);
            FloatVector a9 = FloatVector.fromArray(F, acc, o0 + 9 * d);
            FloatVector a10 = FloatVector.fromArray(F, acc, o0 + 10 * d);
            FloatVector a11 = FloatVector.fromArray(F, acc, o0 + 11 * d);
            FloatVector a12 = FloatVector.fromArray(F, acc, o0 + 12 * d);
            FloatVector a13 = FloatVector.fromArray(F, acc, o0 + 13 * d);
            FloatVector a14 = FloatVector.fromArray(F, acc, o0 + 14 * d);
            FloatVector a15 = FloatVector.fromArray(F, acc, o0 + 15 * d);
            long off = vBase + 2L * ValueChunks.element(d, 0, i);
            long step = 2L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = f16(page, off);
                int pj = p0 + j;
                a0 = x.fma(FloatVector.broadcast(F, p[pj]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[pj + block]), a1);
                a2 = x.fma(FloatVector.broadcast(F, p[pj + 2 * block]), a2);
                a3 = x.fma(FloatVector.broadcast(F, p[pj + 3 * block]), a3);
                a4 = x.fma(FloatVector.broadcast(F, p[pj + 4 * block]), a4);
                a5 = x.fma(FloatVector.broadcast(F, p[pj + 5 * block]), a5);
                a6 = x.fma(FloatVector.broadcast(F, p[pj + 6 * block]), a6);
                a7 = x.fma(FloatVector.broadcast(F, p[pj + 7 * block]), a7);
                a8 = x.fma(FloatVector.broadcast(F, p[pj + 8 * block]), a8);
                a9 = x.fma(FloatVector.broadcast(F, p[pj + 9 * block]), a9);
                a10 = x.fma(FloatVector.broadcast(F, p[pj + 10 * block]), a10);
                a11 = x.fma(FloatVector.broadcast(F, p[pj + 11 * block]), a11);
                a12 = x.fma(FloatVector.broadcast(F, p[pj + 12 * block]), a12);
                a13 = x.fma(FloatVector.broadcast(F, p[pj + 13 * block]), a13);
                a14 = x.fma(FloatVector.broadcast(F, p[pj + 14 * block]), a14);
                a15 = x.fma(FloatVector.broadcast(F, p[pj + 15 * block]), a15);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
            a4.intoArray(acc, o0 + 4 * d);
            a5.intoArray(acc, o0 + 5 * d);
            a6.intoArray(acc, o0 + 6 * d);
            a7.intoArray(acc, o0 + 7 * d);
            a8.intoArray(acc, o0 + 8 * d);
            a9.intoArray(acc, o0 + 9 * d);
            a10.intoArray(acc, o0 + 10 * d);
            a11.intoArray(acc, o0 + 11 * d);
            a12.intoArray(acc, o0 + 12 * d);
            a13.intoArray(acc, o0 + 13 * d);
            a14.intoArray(acc, o0 + 14 * d);
            a15.intoArray(acc, o0 + 15 * d);
        }
    }

    /** {@link #accumulateF16x4} for heads {@code h .. h+8}: each value vector widened once for eight heads. */
    private static void accumulateF16x8(GroupAttention st, MemorySegment page, long vBase, int nb, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        final int p0 = h * block;
        for (int i = 0; i < d; i += LANES) {
            int o0 = h * d + i;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            FloatVector a4 = FloatVector.fromArray(F, acc, o0 + 4 * d);
            FloatVector a5 = FloatVector.fromArray(F, acc, o0 + 5 * d);
            FloatVector a6 = FloatVector.fromArray(F, acc, o0 + 6 * d);
            FloatVector a7 = FloatVector.fromArray(F, acc, o0 + 7 * d);
            long off = vBase + 2L * ValueChunks.element(d, 0, i);
            long step = 2L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = f16(page, off);
                int pj = p0 + j;
                a0 = x.fma(FloatVector.broadcast(F, p[pj]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[pj + block]), a1);
                a2 = x.fma(FloatVector.broadcast(F, p[pj + 2 * block]), a2);
                a3 = x.fma(FloatVector.broadcast(F, p[pj + 3 * block]), a3);
                a4 = x.fma(FloatVector.broadcast(F, p[pj + 4 * block]), a4);
                a5 = x.fma(FloatVector.broadcast(F, p[pj + 5 * block]), a5);
                a6 = x.fma(FloatVector.broadcast(F, p[pj + 6 * block]), a6);
                a7 = x.fma(FloatVector.broadcast(F, p[pj + 7 * block]), a7);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
            a4.intoArray(acc, o0 + 4 * d);
            a5.intoArray(acc, o0 + 5 * d);
            a6.intoArray(acc, o0 + 6 * d);
            a7.intoArray(acc, o0 + 7 * d);
        }
    }

    /** The direct f16 value step for heads of any group the direct path takes (2 or a multiple of 4). */
    private static void accumulateF16(GroupAttention st, MemorySegment page, long vBase, int nb) {
        final int g = st.group;
        if (g == 1) {
            accumulateF16x1(st, page, vBase, nb);
            return;
        }
        if (g == 2) {
            accumulateF16x2(st, page, vBase, nb);
            return;
        }
        int h = 0;
        for (; h + 16 <= g; h += 16) {
            accumulateF16x16(st, page, vBase, nb, h);
        }
        for (; h + 8 <= g; h += 8) {
            accumulateF16x8(st, page, vBase, nb, h);
        }
        for (; h < g; h += 4) {
            accumulateF16x4(st, page, vBase, nb, h);
        }
    }

    /**
     * Adds {@code Σ_j p[h][j]·v[j]} for heads {@code h .. h+4} from the page: two value vectors per
     * pass, so each weight broadcast feeds two FMAs and eight chains are in flight; each lane's sum
     * is still taken over the block's tokens in order, as {@code accumulate4} takes it.
     */
    private static void accumulateF16x4(GroupAttention st, MemorySegment page, long vBase, int nb, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        final int p0 = h * block;
        int i0 = 0;
        for (; i0 + 2 * LANES <= d; i0 += 2 * LANES) {
            int o0 = h * d + i0;
            int o1 = o0 + LANES;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            FloatVector b0 = FloatVector.fromArray(F, acc, o1);
            FloatVector b1 = FloatVector.fromArray(F, acc, o1 + d);
            FloatVector b2 = FloatVector.fromArray(F, acc, o1 + 2 * d);
            FloatVector b3 = FloatVector.fromArray(F, acc, o1 + 3 * d);
            long off = vBase + 2L * ValueChunks.element(d, 0, i0);
            long step = 2L * ValueChunks.width(d, i0);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = f16(page, off);
                FloatVector y = f16(page, off + 2L * LANES);
                FloatVector w0 = FloatVector.broadcast(F, p[p0 + j]);
                FloatVector w1 = FloatVector.broadcast(F, p[p0 + block + j]);
                FloatVector w2 = FloatVector.broadcast(F, p[p0 + 2 * block + j]);
                FloatVector w3 = FloatVector.broadcast(F, p[p0 + 3 * block + j]);
                a0 = x.fma(w0, a0);
                a1 = x.fma(w1, a1);
                a2 = x.fma(w2, a2);
                a3 = x.fma(w3, a3);
                b0 = y.fma(w0, b0);
                b1 = y.fma(w1, b1);
                b2 = y.fma(w2, b2);
                b3 = y.fma(w3, b3);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
            b0.intoArray(acc, o1);
            b1.intoArray(acc, o1 + d);
            b2.intoArray(acc, o1 + 2 * d);
            b3.intoArray(acc, o1 + 3 * d);
        }
        for (int i = i0; i < d; i += LANES) {
            int o0 = h * d + i;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            long off = vBase + 2L * ValueChunks.element(d, 0, i);
            long step = 2L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = f16(page, off);
                a0 = x.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[p0 + block + j]), a1);
                a2 = x.fma(FloatVector.broadcast(F, p[p0 + 2 * block + j]), a2);
                a3 = x.fma(FloatVector.broadcast(F, p[p0 + 3 * block + j]), a3);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
        }
    }

    private static void accumulateF16x2(GroupAttention st, MemorySegment page, long vBase, int nb) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] acc = st.acc;
        for (int i = 0; i < d; i += LANES) {
            FloatVector a0 = FloatVector.fromArray(F, acc, i);
            FloatVector a1 = FloatVector.fromArray(F, acc, i + d);
            long off = vBase + 2L * ValueChunks.element(d, 0, i);
            long step = 2L * ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++, off += step) {
                FloatVector x = f16(page, off);
                a0 = x.fma(FloatVector.broadcast(F, p[j]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[block + j]), a1);
            }
            a0.intoArray(acc, i);
            a1.intoArray(acc, i + d);
        }
    }

    /**
     * Logits of four query heads for one block from the widened, dimension-major key block: one key
     * vector load feeds four FMAs, and no horizontal reductions are needed.
     */
    private static void scores4(GroupAttention st, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] q = st.q;
        final float[] kt = st.kBuf;
        final int q0 = h * d;
        final int q1 = q0 + d;
        final int q2 = q1 + d;
        final int q3 = q2 + d;
        for (int c = 0; c < block; c += LANES) {
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = FloatVector.zero(F);
            FloatVector a2 = FloatVector.zero(F);
            FloatVector a3 = FloatVector.zero(F);
            for (int i = 0; i < d; i++) {
                FloatVector k = FloatVector.fromArray(F, kt, i * block + c);
                a0 = k.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
                a1 = k.fma(FloatVector.broadcast(F, q[q1 + i]), a1);
                a2 = k.fma(FloatVector.broadcast(F, q[q2 + i]), a2);
                a3 = k.fma(FloatVector.broadcast(F, q[q3 + i]), a3);
            }
            int base = h * block + c;
            a0.intoArray(st.blockLogits, base);
            a1.intoArray(st.blockLogits, base + block);
            a2.intoArray(st.blockLogits, base + 2 * block);
            a3.intoArray(st.blockLogits, base + 3 * block);
        }
    }

    private static void scores2(GroupAttention st, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] q = st.q;
        final float[] kt = st.kBuf;
        final int q0 = h * d;
        final int q1 = q0 + d;
        for (int c = 0; c < block; c += LANES) {
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = FloatVector.zero(F);
            FloatVector b0 = FloatVector.zero(F);
            FloatVector b1 = FloatVector.zero(F);
            int i = 0;
            for (; i + 1 < d; i += 2) {
                FloatVector k0 = FloatVector.fromArray(F, kt, i * block + c);
                FloatVector k1 = FloatVector.fromArray(F, kt, (i + 1) * block + c);
                a0 = k0.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
                b0 = k0.fma(FloatVector.broadcast(F, q[q1 + i]), b0);
                a1 = k1.fma(FloatVector.broadcast(F, q[q0 + i + 1]), a1);
                b1 = k1.fma(FloatVector.broadcast(F, q[q1 + i + 1]), b1);
            }
            if (i < d) {
                FloatVector k0 = FloatVector.fromArray(F, kt, i * block + c);
                a0 = k0.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
                b0 = k0.fma(FloatVector.broadcast(F, q[q1 + i]), b0);
            }
            a0.add(a1).intoArray(st.blockLogits, h * block + c);
            b0.add(b1).intoArray(st.blockLogits, (h + 1) * block + c);
        }
    }

    private static void scores1(GroupAttention st, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] q = st.q;
        final float[] kt = st.kBuf;
        final int q0 = h * d;
        for (int c = 0; c < block; c += LANES) {
            FloatVector a0 = FloatVector.zero(F);
            FloatVector a1 = FloatVector.zero(F);
            int i = 0;
            for (; i + 1 < d; i += 2) {
                a0 = FloatVector.fromArray(F, kt, i * block + c).fma(FloatVector.broadcast(F, q[q0 + i]), a0);
                a1 = FloatVector.fromArray(F, kt, (i + 1) * block + c).fma(FloatVector.broadcast(F, q[q0 + i + 1]), a1);
            }
            if (i < d) {
                a0 = FloatVector.fromArray(F, kt, i * block + c).fma(FloatVector.broadcast(F, q[q0 + i]), a0);
            }
            a0.add(a1).intoArray(st.blockLogits, h * block + c);
        }
    }

    /**
     * Adds {@code Σ_j p[h][j]·v[j]} for four heads from the widened value block: each value vector is
     * loaded once for the four.
     */
    private static void accumulate4(GroupAttention st, int nb, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] v = st.vBuf;
        final float[] acc = st.acc;
        final int p0 = h * block;
        int i = 0;
        for (int bound = d - LANES; i <= bound; i += LANES) {
            int o0 = h * d + i;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            FloatVector a2 = FloatVector.fromArray(F, acc, o0 + 2 * d);
            FloatVector a3 = FloatVector.fromArray(F, acc, o0 + 3 * d);
            int vb = (int) ValueChunks.element(d, 0, i);
            int vw = ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++) {
                FloatVector x = FloatVector.fromArray(F, v, vb + j * vw);
                a0 = x.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[p0 + block + j]), a1);
                a2 = x.fma(FloatVector.broadcast(F, p[p0 + 2 * block + j]), a2);
                a3 = x.fma(FloatVector.broadcast(F, p[p0 + 3 * block + j]), a3);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
            a2.intoArray(acc, o0 + 2 * d);
            a3.intoArray(acc, o0 + 3 * d);
        }
        for (int hh = h; hh < h + 4; hh++) {
            accumulateTail(st, nb, hh, i);
        }
    }

    private static void accumulate2(GroupAttention st, int nb, int h) {
        final int d = st.headDim;
        final int block = GroupAttention.BLOCK;
        final float[] p = st.blockLogits;
        final float[] v = st.vBuf;
        final float[] acc = st.acc;
        final int p0 = h * block;
        int i = 0;
        for (int bound = d - LANES; i <= bound; i += LANES) {
            int o0 = h * d + i;
            FloatVector a0 = FloatVector.fromArray(F, acc, o0);
            FloatVector a1 = FloatVector.fromArray(F, acc, o0 + d);
            int vb = (int) ValueChunks.element(d, 0, i);
            int vw = ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++) {
                FloatVector x = FloatVector.fromArray(F, v, vb + j * vw);
                a0 = x.fma(FloatVector.broadcast(F, p[p0 + j]), a0);
                a1 = x.fma(FloatVector.broadcast(F, p[p0 + block + j]), a1);
            }
            a0.intoArray(acc, o0);
            a1.intoArray(acc, o0 + d);
        }
        accumulateTail(st, nb, h, i);
        accumulateTail(st, nb, h + 1, i);
    }

    private static void accumulate1(GroupAttention st, int nb, int h) {
        final int d = st.headDim;
        final float[] p = st.blockLogits;
        final int p0 = h * GroupAttention.BLOCK;
        int i = 0;
        for (int bound = d - LANES; i <= bound; i += LANES) {
            int o = h * d + i;
            FloatVector a = FloatVector.fromArray(F, st.acc, o);
            int vb = (int) ValueChunks.element(d, 0, i);
            int vw = ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++) {
                a = FloatVector.fromArray(F, st.vBuf, vb + j * vw).fma(FloatVector.broadcast(F, p[p0 + j]), a);
            }
            a.intoArray(st.acc, o);
        }
        accumulateTail(st, nb, h, i);
    }

    private static void accumulateTail(GroupAttention st, int nb, int h, int from) {
        final int d = st.headDim;
        final int p0 = h * GroupAttention.BLOCK;
        for (int i = from; i < d; i++) {
            float a = st.acc[h * d + i];
            int vb = (int) ValueChunks.element(d, 0, i);
            int vw = ValueChunks.width(d, i);
            for (int j = 0; j < nb; j++) {
                a = Math.fma(st.blockLogits[p0 + j], st.vBuf[vb + j * vw], a);
            }
            st.acc[h * d + i] = a;
        }
    }

    private static void softmaxBlock(GroupAttention st, int nb, int slot) {
        if (GroupAttention.BLOCK % LANES != 0) {
            ScalarAttentionKernel.softmaxBlock(st, nb, slot);
            return;
        }
        final int block = GroupAttention.BLOCK;
        final int d = st.headDim;
        final boolean recording = st.recording;
        if (recording && st.recBlocks == st.recCap) {
            st.growBlockRecord();
        }
        for (int h = 0; h < st.group; h++) {
            int pBase = h * block;
            FloatVector maxV = FloatVector.fromArray(F, st.blockLogits, pBase);
            for (int j = LANES; j < block; j += LANES) {
                maxV = maxV.max(FloatVector.fromArray(F, st.blockLogits, pBase + j));
            }
            float bm = maxV.reduceLanes(VectorOperators.MAX);
            float mOld = st.m[h];
            if (bm > mOld) {
                float corr = SoftmaxExp.exp(mOld - bm);
                for (int j = 0; j < block; j += LANES) {
                    FloatVector.fromArray(F, st.l, pBase + j).mul(corr).intoArray(st.l, pBase + j);
                }
                int i = h * d;
                int end = i + d;
                for (; i <= end - LANES; i += LANES) {
                    FloatVector.fromArray(F, st.acc, i).mul(corr).intoArray(st.acc, i);
                }
                for (; i < end; i++) {
                    st.acc[i] *= corr;
                }
                st.m[h] = bm;
            }
            float mNew = st.m[h];
            for (int j = 0; j < block; j += LANES) {
                // lanes past nb held −∞ and now hold 0, which leaves their sums as the scalar twin does
                expLanes(st.blockLogits, pBase + j, mNew, st.blockLogits, pBase + j);
                FloatVector.fromArray(F, st.l, pBase + j)
                        .add(FloatVector.fromArray(F, st.blockLogits, pBase + j))
                        .intoArray(st.l, pBase + j);
            }
            if (recording) {
                int dst = h * st.logitsStride + slot;
                if (nb == block) {
                    // a full block in whole vectors: System.arraycopy of a variable length is a
                    // stub call per head and block, which costs more than the copy
                    for (int j = 0; j < block; j += LANES) {
                        FloatVector.fromArray(F, st.blockLogits, pBase + j).intoArray(st.logits, dst + j);
                    }
                } else {
                    System.arraycopy(st.blockLogits, pBase, st.logits, dst, nb);
                }
                st.recMax[h * st.recCap + st.recBlocks] = mNew;
            }
        }
        if (recording) {
            int b = st.recBlocks;
            st.recStart[b] = slot;
            st.recLen[b] = nb;
            st.recBlocks = b + 1;
        }
    }

    @Override
    public void mass(GroupAttention st, int slots, ScoreAggregation aggregation, float[] massOut) {
        ScalarAttentionKernel.checkMassArgs(st, slots, massOut);
        final int g = st.group;
        final int blocks = st.recBlocks;
        for (int h = 0; h < g; h++) {
            float lse = st.lse[h];
            if (lse == Float.NEGATIVE_INFINITY) {
                ScalarAttentionKernel.blockScales(st, h, 0);
                continue;
            }
            int row = h * st.recCap;
            int b = 0;
            for (; b <= blocks - LANES; b += LANES) {
                expLanes(st.recMax, row + b, lse, st.recScale, row + b);
            }
            ScalarAttentionKernel.blockScales(st, h, b);
        }
        final float[] w = st.logits;
        final float[] scale = st.recScale;
        final int stride = st.logitsStride;
        final int cap = st.recCap;
        final boolean max = aggregation == ScoreAggregation.MAX;
        final boolean mean = aggregation == ScoreAggregation.MEAN;
        final float invGroup = 1f / g;
        final int[] starts = st.recStart;
        final int[] lengths = st.recLen;
        int covered = 0;
        for (int b = 0; b < blocks; b++) {
            int start = starts[b];
            if (start != covered
                    || lengths[b] != GroupAttention.BLOCK
                    || start > slots - GroupAttention.BLOCK
                    || GroupAttention.BLOCK % LANES != 0) {
                // a block that does not continue the previous one, a short one, or one past slots
                covered = ScalarAttentionKernel.massBlock(st, b, slots, covered, aggregation, massOut);
                continue;
            }
            for (int j = start; j < start + GroupAttention.BLOCK; j += LANES) {
                // a head that saw no key has scale 0, which adds nothing (see blockScales)
                FloatVector agg = FloatVector.zero(F);
                for (int h = 0; h < g; h++) {
                    FloatVector c = FloatVector.broadcast(F, scale[h * cap + b]);
                    FloatVector p = FloatVector.fromArray(F, w, h * stride + j);
                    agg = max ? agg.max(p.mul(c)) : p.fma(c, agg);
                }
                if (mean) {
                    agg = agg.mul(invGroup);
                }
                agg.intoArray(massOut, j);
            }
            covered = start + GroupAttention.BLOCK;
        }
        java.util.Arrays.fill(massOut, Math.min(covered, slots), slots, 0f);
    }
}
