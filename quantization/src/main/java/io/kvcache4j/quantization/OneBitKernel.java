package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;
import java.lang.foreign.MemorySegment;

/**
 * Attention arithmetic on 1-bit codes, for one block of at most {@link GroupAttention#BLOCK} keys of
 * one quantized group (see {@link OneBitHeadStore}). Nothing is dequantized: scales are folded into
 * the query and the probabilities, and the codes only select which terms are added.
 *
 * <p><b>Keys.</b> A key's channel {@code c} reproduces as {@code lo_c + bit·s_c}, so {@code q·k̂ =
 * q·lo + Σ_{c: bit set} q_c·s_c}. Once per group and head, {@link #foldKeys} computes {@code β =
 * q·lo} and, for every quad of channels {@code 4k .. 4k+3}, a table of the 16 sums of the folded
 * query {@code q'_c = q_c·s_c} over the subsets of the quad. A key's score is then {@code β} plus one
 * table entry per quad, indexed by the key's four code bits of that quad: a quarter of the additions
 * of the bit-by-bit sum, and with the keys of a block in the lanes of a vector each lookup is one
 * in-register permute (after T-MAC's table lookups, Wei et al., arXiv:2407.00088, applied to the
 * folded query instead of weights).
 *
 * <p><b>Key code layout</b> of one block: {@code ⌈d/8⌉} octets of 16 bytes; byte {@code j} of octet
 * {@code o} holds channels {@code 8o .. 8o+7} of key {@code j} (channel {@code 8o + i} at bit {@code
 * i}; bits of channels {@code >= d} are zero). Its low nibble indexes the table of quad {@code 2o},
 * its high nibble that of quad {@code 2o+1}.
 *
 * <p><b>Values.</b> {@code Σ_t p_t·(lo_c + bit_{t,c}·s_c) = lo_c·Σ_t p_t + s_c·Σ_{t: bit set} p_t}:
 * per channel the sum of the weights of the keys whose bit is set, then one fused multiply-add. The
 * same tables serve the sum: per head and quad of keys, the 16 subset sums of their weights, and a
 * channel's nibble of those keys' bits indexes them (channels in the lanes).
 *
 * <p>Two implementations share this contract to the bit: a Vector API one and its scalar twin. Every
 * sum runs in one fixed order spelled out below, and a masked add leaves an unselected lane untouched
 * exactly as the twin's skipped add does, so the two agree bit for bit and neither depends on the JIT
 * tier. Stateless and thread-safe.
 */
public interface OneBitKernel {

    /** Lanes of the fixed-order partial sums of {@link #foldKeys}'s {@code β}. */
    int BETA_LANES = 16;

    /** {@code "panama"} or {@code "scalar"}. */
    String name();

    /** Channel octets of a row of {@code d} channels, {@code ⌈d/8⌉}: 16 code bytes each per block. */
    static int octets(int d) {
        return (d + 7) >>> 3;
    }

    /**
     * Floats of the {@code tables} array of {@link #foldKeys} for {@code heads} query heads of {@code d}
     * channels: the tables, {@code heads·2⌈d/8⌉·16}, then {@code 16⌈d/16⌉} floats of scratch.
     */
    static int tableFloats(int d, int heads) {
        return heads * octets(d) * 32 + (d + 15) / 16 * 16;
    }

    /**
     * Folds one group's key levels into {@code heads} queries ({@code queries[h·d + c]}).
     *
     * <ul>
     *   <li>{@code beta[h] = Σ_c q_c·lo_c} in {@link #BETA_LANES} lanes: lane {@code l} is the chain
     *       {@code p ← fma(q_c, lo_c, p)} from {@code +0} over {@code c = l, l+16, …} below {@code d}
     *       rounded up to 16 (with {@code q_c = lo_c = 0} past {@code d}), and the 16 lanes are summed
     *       by halving: {@code p_l + p_{l+8}}, then {@code +4}, {@code +2}, {@code +1}.
     *   <li>{@code tables[(⌊k/2⌋·heads + h)·32 + (k mod 2)·16 + i]} for quad {@code k < Q = 2⌈d/8⌉}
     *       and entry {@code i < 16} (the tables an octet of code bytes indexes lie together for all
     *       heads): from {@code +0}, {@code f_b = q_{4k+b}·scale_{4k+b}} ({@code +0} for {@code 4k+b >= d})
     *       added for {@code b = 0, 1, 2, 3} in that order where bit {@code b} of {@code i} is set.
     * </ul>
     */
    void foldKeys(float[] queries, float[] keyLo, float[] keyScale, int d, int heads, float[] beta, float[] tables);

    /**
     * Logits of one block of {@link GroupAttention#BLOCK} keys for {@code heads} query heads, from
     * their codes at {@code codes[offset ..]} (the layout above) and {@link #foldKeys}'s {@code tables}
     * and {@code beta}: {@code out[outOffset + h·outStride + j] = (E + O) + beta[h]}, where {@code E}
     * and {@code O} sum the entries {@code T_{h,k}[nibble_k(j)]} (the table of head {@code h} and quad {@code k} above) of the even and of the
     * odd quads {@code k}, each from {@code +0} in increasing {@code k} (two independent chains).
     */
    void keyLogits(
            MemorySegment codes,
            long offset,
            int d,
            float[] tables,
            float[] beta,
            int heads,
            float[] out,
            int outOffset,
            int outStride);

    /** Floats of {@link #accumulateValues}'s {@code tables} scratch for {@code heads} query heads: {@code 64·heads}. */
    static int valueTableFloats(int heads) {
        return 64 * heads;
    }

    /**
     * Adds the weighted values of one block of {@link GroupAttention#BLOCK} keys, {@code w[h·BLOCK + j]}
     * head {@code h}'s weight of key {@code j} ({@code >= +0}; {@code +0} for a key not attended). The
     * value codes at {@code codes[offset ..]} are two key octets of {@code d} bytes: byte {@code n·d +
     * c} holds channel {@code c} of keys {@code 8n .. 8n+7} (key {@code 8n + i} at bit {@code i}), so
     * its low and high nibbles are the channel's bits of key quads {@code 2n} and {@code 2n+1}. With
     * the tables {@code W_m[i]} ({@code tables[h·64 + 16m + i]}, written here): from {@code +0}, {@code
     * w[h·BLOCK + 4m + b]} added for {@code b = 0 .. 3} where bit {@code b} of {@code i} is set;
     * {@code P = Σ_m W_m[15]} and {@code S_c = Σ_m W_m[nibble_m(c)]} (each from {@code +0}, increasing
     * {@code m}), {@code acc[h·d + c] += fma(lo[c], P, scale[c]·S_c)}.
     */
    void accumulateValues(
            float[] weights,
            MemorySegment codes,
            long offset,
            float[] lo,
            float[] scale,
            int d,
            int heads,
            float[] tables,
            float[] acc);
}
