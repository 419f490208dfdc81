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
 * unpacking is exact, {@link #scores}, {@link #scoresPacked} and {@link #accumulateValues} are one
 * chain of fused multiply-adds per output element in a fixed order, which a vector lane and the
 * scalar loop perform alike, and the one lane reduction, {@link #foldScales}'s bias, has a fixed
 * tree. The two kernels therefore agree to the bit, in every JIT tier. Stateless and thread-safe.
 *
 * <p><b>Groups of query heads.</b> Under grouped-query attention several query heads read one KV
 * head; {@link #scoresPacked} and {@link #accumulateValues} take the whole group, so each code unit
 * is loaded and unpacked once for all its heads, whose independent chains then overlap.
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
     * Scores a block of {@link #BLOCK} keys held as packed codes for {@code heads} query heads at once,
     * unpacking each code unit once for all of them (as a GEMM micro-kernel shares each load of one
     * operand across several rows of the other). Unit {@code u} at {@code src + offset + 16·u} holds
     * channels {@code u·(8/bits) + m} in its bit planes {@code m}, key {@code j} in byte {@code j}.
     * For {@code h < heads} and {@code j < BLOCK}, {@code out[h·BLOCK + j]} is the fused
     * multiply-add chain {@code a ← fma(q[h·qStride + i], code_ij, a)} over {@code i = 0 .. d-1}
     * from {@code a = bias[h]}: the bits of {@link #unpack} followed by {@link #scores} for each head.
     */
    void scoresPacked(
            MemorySegment src,
            long offset,
            int bits,
            float[] q,
            int qStride,
            float[] bias,
            int heads,
            int d,
            float[] out);

    /**
     * Accumulates {@code nb} weighted value rows into the accumulators of {@code heads} query heads, the
     * per-token scales and zero points folded into the probabilities. With {@code groups = ⌈d/gc⌉} and
     * {@code g = c / gc}, for {@code h < heads} and {@code c < d}, {@code acc[h·d + c]} goes through the
     * chain {@code a ← fma(p[h·BLOCK + j]·scales[j·groups + g], v[j·vStride + c], a)} for {@code j =
     * 0 .. nb-1} (the product rounded to float first); then, when {@code zeros} is not null, {@code a
     * + zb} is stored, {@code zb} being the chain {@code zb ← fma(p[h·BLOCK + j], zeros[j·groups + g],
     * zb)} over {@code j} from {@code zb = 0}.
     */
    void accumulateValues(
            float[] acc,
            int heads,
            int d,
            int gc,
            float[] v,
            int vStride,
            float[] p,
            float[] scales,
            float[] zeros,
            int nb);
}
