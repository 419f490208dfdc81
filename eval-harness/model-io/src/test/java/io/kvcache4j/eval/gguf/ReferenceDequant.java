package io.kvcache4j.eval.gguf;

/**
 * Float64 dequantization written directly from ggml's block layouts, independent of the library's
 * code: the judge for the kernels and for {@link GgmlQuants}. Works on a little-endian byte array.
 */
final class ReferenceDequant {
    private ReferenceDequant() {}

    static int u8(byte[] b, int i) {
        return b[i] & 0xFF;
    }

    static double half(byte[] b, int i) {
        int h = u8(b, i) | (u8(b, i + 1) << 8);
        int sign = (h >>> 15) != 0 ? -1 : 1;
        int exp = (h >>> 10) & 0x1F;
        int mant = h & 0x3FF;
        if (exp == 0) {
            return sign * mant * Math.pow(2, -24);
        }
        if (exp == 31) {
            return mant == 0 ? sign * Double.POSITIVE_INFINITY : Double.NaN;
        }
        return sign * (1024 + mant) * Math.pow(2, exp - 25);
    }

    static double bf16(byte[] b, int i) {
        int h = u8(b, i) | (u8(b, i + 1) << 8);
        return Float.intBitsToFloat(h << 16);
    }

    /**
     * The {@code n} values stored from byte {@code at}, and in {@code mag[i]} the magnitude of the
     * terms a kernel sums for element {@code i} when multiplied by x (for Q4_K the scale and min
     * parts separately), so that rounding tolerances can be set relative to them.
     */
    static double[] dequantize(GgmlType type, byte[] b, int at, int n, double[] mag) {
        double[] y = new double[n];
        switch (type) {
            case F32 -> {
                for (int i = 0; i < n; i++) {
                    int bits = u8(b, at + 4 * i)
                            | (u8(b, at + 4 * i + 1) << 8)
                            | (u8(b, at + 4 * i + 2) << 16)
                            | (u8(b, at + 4 * i + 3) << 24);
                    y[i] = Float.intBitsToFloat(bits);
                }
            }
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    y[i] = half(b, at + 2 * i);
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    y[i] = bf16(b, at + 2 * i);
                }
            }
            case Q8_0 -> {
                for (int blk = 0; blk < n / 32; blk++) {
                    int o = at + 34 * blk;
                    double d = half(b, o);
                    for (int j = 0; j < 32; j++) {
                        y[32 * blk + j] = d * b[o + 2 + j];
                    }
                }
            }
            case Q4_0 -> {
                for (int blk = 0; blk < n / 32; blk++) {
                    int o = at + 18 * blk;
                    double d = half(b, o);
                    for (int j = 0; j < 32; j++) {
                        int byteVal = u8(b, o + 2 + (j % 16));
                        int q = j < 16 ? byteVal & 0xF : byteVal >>> 4;
                        y[32 * blk + j] = d * (q - 8);
                    }
                }
            }
            case Q4_K -> {
                for (int blk = 0; blk < n / 256; blk++) {
                    int o = at + 144 * blk;
                    double d = half(b, o);
                    double dmin = half(b, o + 2);
                    int sc = o + 4;
                    int qs = o + 16;
                    for (int sub = 0; sub < 8; sub++) {
                        // 6-bit scale and min: sub-blocks 0..3 in the low 6 bits of bytes 0..3 / 4..7,
                        // sub-blocks 4..7 split between the nibbles of bytes 8..11 and the top bits
                        int scale;
                        int min;
                        if (sub < 4) {
                            scale = u8(b, sc + sub) & 0x3F;
                            min = u8(b, sc + sub + 4) & 0x3F;
                        } else {
                            scale = (u8(b, sc + sub + 4) & 0x0F) | ((u8(b, sc + sub - 4) >>> 6) << 4);
                            min = (u8(b, sc + sub + 4) >>> 4) | ((u8(b, sc + sub) >>> 6) << 4);
                        }
                        for (int j = 0; j < 32; j++) {
                            int byteVal = u8(b, qs + 32 * (sub / 2) + j);
                            int q = sub % 2 == 0 ? byteVal & 0xF : byteVal >>> 4;
                            int i = 256 * blk + 32 * sub + j;
                            y[i] = d * scale * q - dmin * min;
                            if (mag != null) {
                                mag[i] = Math.abs(d * scale * q) + Math.abs(dmin * min);
                            }
                        }
                    }
                }
                return y;
            }
            case Q6_K -> {
                for (int blk = 0; blk < n / 256; blk++) {
                    int o = at + 210 * blk;
                    double d = half(b, o + 208);
                    for (int i = 0; i < 256; i++) {
                        int half = i / 128; // which 128-element half
                        int k = i % 128;
                        int quarter = k / 32; // q1..q4
                        int l = k % 32;
                        int ql = u8(b, o + 64 * half + l + (quarter % 2 == 1 ? 32 : 0));
                        int low = quarter < 2 ? ql & 0xF : ql >>> 4;
                        int high = (u8(b, o + 128 + 32 * half + l) >>> (2 * quarter)) & 3;
                        int q = (low | (high << 4)) - 32;
                        int scale = b[o + 192 + 8 * half + l / 16 + 2 * quarter];
                        y[256 * blk + i] = d * scale * q;
                    }
                }
            }
            default -> throw new IllegalArgumentException(type.toString());
        }
        if (mag != null) {
            for (int i = 0; i < n; i++) {
                mag[i] = Math.abs(y[i]);
            }
        }
        return y;
    }
}
