package io.kvcache4j.eval.gguf;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Element conversions of ggml's storage types, written from ggml's block layouts: half and bfloat16
 * rounding, the reference quantizers of {@code Q8_0} and {@code Q4_0} (the ones ggml uses to create
 * model files deterministically), and plain dequantization of every type that has a kernel. These
 * are the portable definitions the vectorized kernels are tested against; all methods are
 * stateless and thread-safe.
 */
public final class GgmlQuants {
    static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private GgmlQuants() {}

    /** binary16 bits to float (exact). */
    public static float halfToFloat(short h) {
        return Float.float16ToFloat(h);
    }

    /** float to binary16 bits, rounding to nearest even (as ggml's conversion does). */
    public static short floatToHalf(float f) {
        return Float.floatToFloat16(f);
    }

    /** bfloat16 bits to float (exact). */
    public static float bf16ToFloat(short h) {
        return Float.intBitsToFloat((h & 0xFFFF) << 16);
    }

    /** float to bfloat16 bits, rounding to nearest even; NaN stays a quiet NaN (ggml's rule). */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 64);
        }
        return (short) ((bits + (0x7fff + ((bits >>> 16) & 1))) >>> 16);
    }

    /**
     * Encodes {@code n} floats as {@code type} into {@code dst} (which must hold {@code
     * type.bytesFor(n)} bytes from {@code dstOff}). {@code Q8_0} and {@code Q4_0} use ggml's reference
     * quantizers, bit for bit.
     *
     * @throws UnsupportedOperationException for types other than F32, F16, BF16, Q8_0, Q4_0
     * @throws IllegalArgumentException if {@code n} is not a multiple of the block size
     */
    public static void quantize(GgmlType type, float[] src, int srcOff, int n, byte[] dst, int dstOff) {
        long bytes = type.bytesFor(n);
        if (dstOff < 0 || dst.length - dstOff < bytes) {
            throw new IllegalArgumentException(
                    "dst has " + (dst.length - dstOff) + " bytes from " + dstOff + "; " + type + " needs " + bytes);
        }
        MemorySegment out = MemorySegment.ofArray(dst);
        switch (type) {
            case F32 -> {
                for (int i = 0; i < n; i++) {
                    out.set(LE_FLOAT, dstOff + 4L * i, src[srcOff + i]);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    out.set(LE_SHORT, dstOff + 2L * i, floatToHalf(src[srcOff + i]));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    out.set(LE_SHORT, dstOff + 2L * i, floatToBf16(src[srcOff + i]));
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    quantizeBlockQ8_0(src, srcOff + 32 * b, out, dstOff + 34L * b);
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    quantizeBlockQ4_0(src, srcOff + 32 * b, out, dstOff + 18L * b);
                }
            }
            default ->
                throw new UnsupportedOperationException(
                        "no quantizer for " + type + "; supported: F32, F16, BF16, Q8_0, Q4_0");
        }
    }

    /** ggml's quantize_row_q8_0_ref for one block: d = max|x|/127, q = round(x/d) half away from zero. */
    private static void quantizeBlockQ8_0(float[] x, int off, MemorySegment out, long at) {
        float amax = 0f;
        for (int j = 0; j < 32; j++) {
            amax = Math.max(amax, Math.abs(x[off + j]));
        }
        float d = amax / 127f;
        float id = d != 0f ? 1f / d : 0f;
        out.set(LE_SHORT, at, floatToHalf(d));
        for (int j = 0; j < 32; j++) {
            out.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) roundHalfAwayFromZero(x[off + j] * id));
        }
    }

    /**
     * ggml's quantize_row_q4_0_ref for one block: d = (the value of largest magnitude) / −8, codes
     * min(15, trunc(x/d + 8.5)), element j in the low nibble of byte j and element j+16 in its high
     * nibble.
     */
    private static void quantizeBlockQ4_0(float[] x, int off, MemorySegment out, long at) {
        float amax = 0f;
        float max = 0f;
        for (int j = 0; j < 32; j++) {
            float v = x[off + j];
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        float d = max / -8f;
        float id = d != 0f ? 1f / d : 0f;
        out.set(LE_SHORT, at, floatToHalf(d));
        for (int j = 0; j < 16; j++) {
            int q0 = Math.min(15, (byte) (int) (x[off + j] * id + 8.5f));
            int q1 = Math.min(15, (byte) (int) (x[off + 16 + j] * id + 8.5f));
            out.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) (q0 | (q1 << 4)));
        }
    }

    /** C's roundf: nearest integer, halfway cases away from zero. */
    static int roundHalfAwayFromZero(float f) {
        double a = Math.floor(Math.abs((double) f) + 0.5);
        return (int) (f < 0 ? -a : a);
    }

    /**
     * Decodes {@code n} elements of {@code type} stored at {@code src + offset} into {@code
     * dst[dstOff..dstOff+n)}, element by element as ggml's dequantize_row functions compute them.
     *
     * @throws UnsupportedOperationException if the type has no kernel
     * @throws IllegalArgumentException if {@code n} is not a multiple of the block size
     */
    public static void dequantize(GgmlType type, MemorySegment src, long offset, float[] dst, int dstOff, int n) {
        if (n % type.blockSize() != 0) {
            throw new IllegalArgumentException(
                    n + " elements is not a multiple of " + type + "'s block size " + type.blockSize());
        }
        switch (type) {
            case F32 -> MemorySegment.copy(src, LE_FLOAT, offset, dst, dstOff, n);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOff + i] = halfToFloat(src.get(LE_SHORT, offset + 2L * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOff + i] = bf16ToFloat(src.get(LE_SHORT, offset + 2L * i));
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    long at = offset + 34L * b;
                    float d = halfToFloat(src.get(LE_SHORT, at));
                    for (int j = 0; j < 32; j++) {
                        dst[dstOff + 32 * b + j] = src.get(ValueLayout.JAVA_BYTE, at + 2 + j) * d;
                    }
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    long at = offset + 18L * b;
                    float d = halfToFloat(src.get(LE_SHORT, at));
                    for (int j = 0; j < 16; j++) {
                        int q = src.get(ValueLayout.JAVA_BYTE, at + 2 + j) & 0xFF;
                        dst[dstOff + 32 * b + j] = ((q & 0x0F) - 8) * d;
                        dst[dstOff + 32 * b + 16 + j] = ((q >>> 4) - 8) * d;
                    }
                }
            }
            case Q4_K -> {
                for (int b = 0; b < n / 256; b++) {
                    dequantizeBlockQ4K(src, offset + 144L * b, dst, dstOff + 256 * b);
                }
            }
            case Q6_K -> {
                for (int b = 0; b < n / 256; b++) {
                    dequantizeBlockQ6K(src, offset + 210L * b, dst, dstOff + 256 * b);
                }
            }
            default -> throw new UnsupportedOperationException("no kernel for " + type);
        }
    }

    private static void dequantizeBlockQ4K(MemorySegment src, long at, float[] y, int yOff) {
        float d = halfToFloat(src.get(LE_SHORT, at));
        float dmin = halfToFloat(src.get(LE_SHORT, at + 2));
        long scales = at + 4;
        long qs = at + 16;
        for (int c = 0; c < 4; c++) {
            int s0 = q4kScale(src, scales, 2 * c);
            int m0 = q4kMin(src, scales, 2 * c);
            int s1 = q4kScale(src, scales, 2 * c + 1);
            int m1 = q4kMin(src, scales, 2 * c + 1);
            float d1 = d * s0;
            float min1 = dmin * m0;
            float d2 = d * s1;
            float min2 = dmin * m1;
            for (int l = 0; l < 32; l++) {
                int q = src.get(ValueLayout.JAVA_BYTE, qs + 32L * c + l) & 0xFF;
                y[yOff + 64 * c + l] = d1 * (q & 0xF) - min1;
                y[yOff + 64 * c + 32 + l] = d2 * (q >>> 4) - min2;
            }
        }
    }

    /** The 6-bit scale of sub-block {@code j} (0..7) of a Q4_K super-block (ggml's get_scale_min_k4). */
    static int q4kScale(MemorySegment src, long scales, int j) {
        if (j < 4) {
            return u8(src, scales + j) & 63;
        }
        return (u8(src, scales + j + 4) & 0xF) | ((u8(src, scales + j - 4) >>> 6) << 4);
    }

    /** The 6-bit min of sub-block {@code j} (0..7) of a Q4_K super-block. */
    static int q4kMin(MemorySegment src, long scales, int j) {
        if (j < 4) {
            return u8(src, scales + j + 4) & 63;
        }
        return (u8(src, scales + j + 4) >>> 4) | ((u8(src, scales + j) >>> 6) << 4);
    }

    private static void dequantizeBlockQ6K(MemorySegment src, long at, float[] y, int yOff) {
        float d = halfToFloat(src.get(LE_SHORT, at + 208));
        for (int half = 0; half < 2; half++) {
            long ql = at + 64L * half;
            long qh = at + 128 + 32L * half;
            long sc = at + 192 + 8L * half;
            int base = yOff + 128 * half;
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int lo0 = u8(src, ql + l);
                int lo1 = u8(src, ql + 32 + l);
                int h = u8(src, qh + l);
                int q1 = ((lo0 & 0xF) | ((h & 3) << 4)) - 32;
                int q2 = ((lo1 & 0xF) | (((h >>> 2) & 3) << 4)) - 32;
                int q3 = ((lo0 >>> 4) | (((h >>> 4) & 3) << 4)) - 32;
                int q4 = ((lo1 >>> 4) | (((h >>> 6) & 3) << 4)) - 32;
                y[base + l] = d * src.get(ValueLayout.JAVA_BYTE, sc + is) * q1;
                y[base + 32 + l] = d * src.get(ValueLayout.JAVA_BYTE, sc + is + 2) * q2;
                y[base + 64 + l] = d * src.get(ValueLayout.JAVA_BYTE, sc + is + 4) * q3;
                y[base + 96 + l] = d * src.get(ValueLayout.JAVA_BYTE, sc + is + 6) * q4;
            }
        }
    }

    static int u8(MemorySegment src, long at) {
        return src.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
    }
}
