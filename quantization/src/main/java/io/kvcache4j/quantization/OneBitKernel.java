package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;

/**
 * Attention arithmetic on 1-bit codes, for one block of at most {@link GroupAttention#BLOCK} keys of
 * one quantized group (see {@link OneBitHeadStore}). Nothing is dequantized: scales are folded into
 * the query and the probabilities, and the codes only select which terms are added.
 *
 * <p><b>Keys.</b> A key's channel {@code c} reproduces as {@code lo_c + bit·s_c}, so {@code q·k̂ =
 * q·lo + Σ_{c: bit set} q_c·s_c}: with the folded query {@code q'_c = q_c·s_c} and {@code β = q·lo}
 * (both once per group), a score is {@code β} plus the sum of {@code q'} over the set bits.
 *
 * <p><b>Values.</b> {@code Σ_t p_t·(lo_c + bit_{t,c}·s_c) = lo_c·Σ_t p_t + s_c·Σ_{t: bit set} p_t}:
 * per channel one masked sum of the weights, then one fused multiply-add.
 *
 * <p>Two implementations share this contract to the bit: a Vector API one (masked lane-wise adds;
 * the bit order of the codes maps to lanes) and its scalar twin. Every sum runs in one fixed order
 * (keys: channels in increasing order, then {@code β}; values: tokens in increasing order), and a
 * masked add leaves an unselected lane untouched exactly as the twin's skipped add does, so the two
 * agree bit for bit and neither depends on the JIT tier. Stateless and thread-safe.
 */
public interface OneBitKernel {

    /** {@code "panama"} or {@code "scalar"}. */
    String name();

    /**
     * Logits of one block for {@code heads} query heads: {@code logits[h·BLOCK + j] = (Σ_{c < d, bit
     * j of codes[c] set} folded[h·d + c]) + beta[h]} for {@code j < BLOCK}, the sum starting at
     * {@code +0} and taken in increasing {@code c}. Bit {@code j} of {@code codes[c]} (only the low
     * {@code BLOCK} bits are read) is channel {@code c} of key {@code j}.
     */
    void keyLogits(int[] codes, float[] folded, float[] beta, int d, int heads, float[] logits);

    /**
     * Adds the weighted values of one block: for every head {@code h} and channel {@code c}, with
     * {@code P = Σ_{j < nb} w[h·BLOCK + j]} and {@code S = Σ_{j < nb, bit c of row j set} w[h·BLOCK + j]}
     * (both from {@code +0}, increasing {@code j}), {@code acc[h·d + c] += fma(lo[c], P, scale[c]·S)}.
     * Row {@code j}'s bits are {@code rows[j·words ..]}: channel {@code c} is bit {@code c & 63} of word
     * {@code c >>> 6}.
     */
    void accumulateValues(
            float[] weights, int nb, long[] rows, int words, float[] lo, float[] scale, int d, int heads, float[] acc);
}
