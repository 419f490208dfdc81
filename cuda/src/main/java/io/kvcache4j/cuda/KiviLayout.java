package io.kvcache4j.cuda;

import io.kvcache4j.quantization.KiviConfig;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The byte layout of one KIVI int4 quantized group as {@link io.kvcache4j.quantization.KiviHeadStore}
 * lays it out in its pages (Liu et al., "KIVI", ICML 2024), which {@code kv_decode_int4} reads with
 * the groups of a head stored back to back: {@code [key scales: d f32][key zeros: d f32][value
 * scales: G × d/Gv f32][value zeros: G × d/Gv f32][key codes][value codes]}; key codes in sub-blocks
 * of 16 tokens, one 16-byte unit per pair of channels (channel {@code i} in the nibble {@code i % 2}
 * of byte {@code t % 16}); value rows of 16-byte units of 32 channels (channel {@code c} of a unit in
 * byte {@code c % 16}, nibble {@code (c % 32) / 16}).
 *
 * <p>{@link #quantize} repeats KiviHeadStore's quantizer (f16-rounded inputs, asymmetric min/max per
 * key channel over the group and per token over value channel groups) so tests can build device
 * groups and check them against the store's {@code readKey}/{@code readValue}; {@link #score} and
 * {@link #value} are the kernel's arithmetic on the codes (scales and zero points folded into the
 * query).
 *
 * @param headDim elements per row
 * @param groupTokens tokens per group {@code G} (a multiple of 32 for the kernel)
 * @param valueGroupChannels channels per value scale {@code Gv} (divides {@code headDim})
 */
public record KiviLayout(int headDim, int groupTokens, int valueGroupChannels) {
    private static final int BITS = 4;
    private static final int LEVELS = 15;
    private static final ValueLayout.OfFloat F32 = KernelEmulator.F32;

    public KiviLayout {
        if (headDim < 1 || headDim % valueGroupChannels != 0) {
            throw new IllegalArgumentException(
                    "valueGroupChannels " + valueGroupChannels + " must divide headDim " + headDim);
        }
        if (groupTokens < 32 || groupTokens % 32 != 0) {
            throw new IllegalArgumentException(
                    "groupTokens must be a positive multiple of 32 for the int4 kernel, was " + groupTokens);
        }
    }

    /** The layout of a 4-bit KIVI configuration whose scales and zero points are f32. */
    public static KiviLayout of(KiviConfig config, int headDim) {
        checkReadable(config);
        config.check(headDim);
        return new KiviLayout(headDim, config.groupTokens(), config.valueGroupChannels());
    }

    /**
     * Checks what the int4 kernels need of a configuration whatever the head dimension: 4-bit codes,
     * f32 scales and zero points, groups of a multiple of 32 tokens.
     *
     * @throws IllegalArgumentException naming the value the kernels cannot read
     */
    public static void checkReadable(KiviConfig config) {
        if (config.bits() != BITS) {
            throw new IllegalArgumentException("the int4 kernel reads 4-bit codes, configuration has " + config.bits());
        }
        if (config.scaleType() != io.kvcache4j.api.KvDType.F32) {
            throw new IllegalArgumentException("the int4 kernel reads f32 scales and zero points, configuration has "
                    + config.scaleType().name().toLowerCase(java.util.Locale.ROOT));
        }
        if (config.groupTokens() % 32 != 0) {
            throw new IllegalArgumentException(
                    "groupTokens must be a positive multiple of 32 for the int4 kernel, was " + config.groupTokens());
        }
    }

    int valueGroups() {
        return headDim / valueGroupChannels;
    }

    long vScaleOffset() {
        return 8L * headDim;
    }

    long vZeroOffset() {
        return vScaleOffset() + 4L * groupTokens * valueGroups();
    }

    long kCodesOffset() {
        return vZeroOffset() + 4L * groupTokens * valueGroups();
    }

    long keySubBytes() {
        return 16L * ((headDim + 1) / 2);
    }

    long vCodesOffset() {
        return kCodesOffset() + (long) ((groupTokens + 15) / 16) * keySubBytes();
    }

    long valueRowBytes() {
        return 16L * ((headDim + 31) / 32);
    }

    /** Bytes of one group. */
    public long groupBytes() {
        return vCodesOffset() + groupTokens * valueRowBytes();
    }

    private long keyCodeByte(long base, int t, int i) {
        return base + kCodesOffset() + (t / 16) * keySubBytes() + 16L * (i / 2) + t % 16;
    }

    private long valueCodeByte(long base, int t, int c) {
        return base + vCodesOffset() + t * valueRowBytes() + 16L * (c / 32) + c % 16;
    }

    private static int nibble(MemorySegment seg, long at, int shift) {
        return (seg.get(ValueLayout.JAVA_BYTE, at) >>> shift) & LEVELS;
    }

    /**
     * Quantizes {@code groupTokens} rows of keys and values ({@code [G][d]}, rounded to f16 first as
     * the store's residual does) into group {@code group} of {@code dst}.
     */
    public void quantize(float[] keys, float[] values, MemorySegment dst, int group) {
        int g = groupTokens;
        int d = headDim;
        long base = group * groupBytes();
        dst.asSlice(base, groupBytes()).fill((byte) 0);
        float[] k = new float[g * d];
        float[] v = new float[g * d];
        for (int e = 0; e < g * d; e++) {
            k[e] = Float.float16ToFloat(Float.floatToFloat16(keys[e]));
            v[e] = Float.float16ToFloat(Float.floatToFloat16(values[e]));
        }
        for (int i = 0; i < d; i++) {
            float mn = Float.POSITIVE_INFINITY;
            float mx = Float.NEGATIVE_INFINITY;
            for (int t = 0; t < g; t++) {
                mn = Math.min(mn, k[t * d + i]);
                mx = Math.max(mx, k[t * d + i]);
            }
            float s = (mx - mn) / LEVELS;
            dst.set(F32, base + 4L * i, s);
            dst.set(F32, base + 4L * (d + i), mn);
            for (int t = 0; t < g; t++) {
                or(dst, keyCodeByte(base, t, i), code(k[t * d + i], s, mn) << (BITS * (i % 2)));
            }
        }
        int groups = valueGroups();
        for (int t = 0; t < g; t++) {
            for (int q = 0; q < groups; q++) {
                int c0 = q * valueGroupChannels;
                float mn = Float.POSITIVE_INFINITY;
                float mx = Float.NEGATIVE_INFINITY;
                for (int c = c0; c < c0 + valueGroupChannels; c++) {
                    mn = Math.min(mn, v[t * d + c]);
                    mx = Math.max(mx, v[t * d + c]);
                }
                float s = (mx - mn) / LEVELS;
                dst.set(F32, base + vScaleOffset() + 4L * (t * groups + q), s);
                dst.set(F32, base + vZeroOffset() + 4L * (t * groups + q), mn);
                for (int c = c0; c < c0 + valueGroupChannels; c++) {
                    or(dst, valueCodeByte(base, t, c), code(v[t * d + c], s, mn) << (BITS * ((c % 32) / 16)));
                }
            }
        }
    }

    private static void or(MemorySegment p, long at, int bits) {
        p.set(ValueLayout.JAVA_BYTE, at, (byte) (p.get(ValueLayout.JAVA_BYTE, at) | bits));
    }

    private static int code(float x, float s, float z) {
        if (s == 0f) {
            return 0;
        }
        float c = (float) Math.rint((x - z) / s);
        return (int) Math.max(0f, Math.min(LEVELS, c));
    }

    /** Key element {@code i} of {@code slot} as the store reproduces it: {@code s·code + z}. */
    public float key(MemorySegment groups, int slot, int i) {
        long base = (long) (slot / groupTokens) * groupBytes();
        int t = slot % groupTokens;
        int c = nibble(groups, keyCodeByte(base, t, i), BITS * (i % 2));
        return groups.get(F32, base + 4L * i) * c + groups.get(F32, base + 4L * (headDim + i));
    }

    /** Value element {@code c} of {@code slot} as the kernel reproduces it: {@code fmaf(s, code, z)}. */
    public float value(MemorySegment groups, int slot, int c) {
        long base = (long) (slot / groupTokens) * groupBytes();
        int t = slot % groupTokens;
        int code = nibble(groups, valueCodeByte(base, t, c), BITS * ((c % 32) / 16));
        int q = c / valueGroupChannels;
        long sAt = 4L * (t * valueGroups() + q);
        return Math.fma(
                groups.get(F32, base + vScaleOffset() + sAt), code, groups.get(F32, base + vZeroOffset() + sAt));
    }

    /**
     * The kernel's score of {@code slot} for the scaled query {@code q[qOff..qOff+d)}: {@code bias = Σ
     * fmaf(q_i, z_i)}, then {@code s = fmaf(q_i·s_i, code_i, s)} from {@code s = bias}, {@code i}
     * ascending.
     */
    public float score(MemorySegment groups, int slot, float[] q, int qOff) {
        long base = (long) (slot / groupTokens) * groupBytes();
        int t = slot % groupTokens;
        float bias = 0f;
        for (int i = 0; i < headDim; i++) {
            bias = Math.fma(q[qOff + i], groups.get(F32, base + 4L * (headDim + i)), bias);
        }
        float s = bias;
        for (int i = 0; i < headDim; i++) {
            int c = nibble(groups, keyCodeByte(base, t, i), BITS * (i % 2));
            s = Math.fma(q[qOff + i] * groups.get(F32, base + 4L * i), c, s);
        }
        return s;
    }
}
