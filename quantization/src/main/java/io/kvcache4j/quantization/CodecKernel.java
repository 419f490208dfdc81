package io.kvcache4j.quantization;

import java.lang.foreign.MemorySegment;

/**
 * The arithmetic of attention on packed codes, shared by every codec of this module: unpacking
 * codes into small integer-valued float blocks, scoring a block of {@link
 * io.kvcache4j.attention.GroupAttention#BLOCK} keys against a (folded) query, and accumulating
 * weighted value codes. Scales and zero points never reach the codes: the stores fold them into the
 * query and the probabilities (see {@link KiviHeadStore}), so the cache is never dequantized.
 *
 * <p><b>Code layout.</b> Codes of {@code bits} bits ({@code 8}, {@code 4} or {@code 2}) are packed
 * in <em>units</em> of 16 bytes holding {@code 16 · (8/bits)} codes: code {@code e} of a unit sits in
 * byte {@code e % 16} at bits {@code [bits·(e / 16), bits·(e / 16) + bits)}. One unit is one vector
 * load of 16 bytes (or two of 8) whose lanes, shifted and masked once per bit plane, are 16
 * consecutive codes, so unpacking needs no shuffles on any vector width. 8-bit codes are signed,
 * narrower ones unsigned.
 *
 * <p><b>Bits.</b> Two implementations with one contract: a Vector API one ({@code panama}) and its
 * scalar twin ({@code scalar}), chosen by {@link CodecKernels}. Every result is defined to the bit:
 * unpacking is exact, and {@link #scores} and {@link #accumulate} are one chain of fused
 * multiply-adds per output element in a fixed order, which a vector lane and the scalar loop perform
 * alike. The two kernels therefore agree to the bit, in every JIT tier. Stateless and thread-safe.
 */
public interface CodecKernel {

    /** Keys scored per block (the online-softmax block of {@code GroupAttention}). */
    int BLOCK = io.kvcache4j.attention.GroupAttention.BLOCK;

    /** {@code "panama"} or {@code "scalar"}. */
    String name();

    /**
     * Unpacks {@code units} units of {@code bits}-bit codes at {@code src + offset} into {@code
     * dst[dstOff ..]}: code {@code e} of unit {@code u} becomes {@code dst[dstOff + u·16·(8/bits) +
     * e]}, as an exact float.
     */
    void unpack(MemorySegment src, long offset, int bits, int units, float[] dst, int dstOff);

    /**
     * Scores a block of {@link #BLOCK} keys: {@code out[outOff + j] = bias + Σ_i q[qOff + i]·codes[i·BLOCK
     * + j]} for {@code j < BLOCK}, summed as the fused multiply-add chain {@code a ← fma(q_i, code_ij,
     * a)} over {@code i = 0 .. d-1} from {@code a = bias}.
     */
    void scores(float[] q, int qOff, int d, float[] codes, float bias, float[] out, int outOff);

    /**
     * Accumulates {@code nb} weighted value rows: for {@code c < d}, {@code acc[accOff + c]} goes
     * through the chain {@code a ← fma(w[j·wStride + c / groupChannels], v[j·vStride + c], a)} for
     * {@code j = 0 .. nb-1}.
     */
    void accumulate(
            float[] acc, int accOff, int d, int groupChannels, float[] v, int vStride, float[] w, int wStride, int nb);
}
