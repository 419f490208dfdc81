package io.kvcache4j.eval.gguf;

import static io.kvcache4j.eval.gguf.GgmlQuants.LE_FLOAT;
import static io.kvcache4j.eval.gguf.GgmlQuants.LE_SHORT;
import static io.kvcache4j.eval.gguf.GgmlQuants.u8;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Portable implementation of {@link WeightKernel}: plain Java, unrolled with independent
 * accumulators. Quantized types are summed per block in integer-code × float form and scaled once
 * per block (or sub-block), as the Vector API twin does.
 */
final class ScalarWeightKernel implements WeightKernel {
    static final ScalarWeightKernel INSTANCE = new ScalarWeightKernel();

    private ScalarWeightKernel() {}

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public float dot(GgmlType type, MemorySegment w, long offset, float[] x, int xOff, int n) {
        return switch (type) {
            case F32 -> dotF32(w, offset, x, xOff, n);
            case F16 -> dotHalf(w, offset, x, xOff, n, false);
            case BF16 -> dotHalf(w, offset, x, xOff, n, true);
            case Q8_0 -> dotQ8_0(w, offset, x, xOff, n);
            case Q4_0 -> dotQ4_0(w, offset, x, xOff, n);
            case Q4_K -> dotQ4K(w, offset, x, xOff, n);
            case Q6_K -> dotQ6K(w, offset, x, xOff, n);
            default -> throw new UnsupportedOperationException("no kernel for " + type);
        };
    }

    static float dotF32(MemorySegment w, long offset, float[] x, int xOff, int n) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            long at = offset + 4L * i;
            s0 += w.get(LE_FLOAT, at) * x[xOff + i];
            s1 += w.get(LE_FLOAT, at + 4) * x[xOff + i + 1];
            s2 += w.get(LE_FLOAT, at + 8) * x[xOff + i + 2];
            s3 += w.get(LE_FLOAT, at + 12) * x[xOff + i + 3];
        }
        for (; i < n; i++) {
            s0 += w.get(LE_FLOAT, offset + 4L * i) * x[xOff + i];
        }
        return (s0 + s1) + (s2 + s3);
    }

    static float dotHalf(MemorySegment w, long offset, float[] x, int xOff, int n, boolean bf16) {
        float s0 = 0f;
        float s1 = 0f;
        float s2 = 0f;
        float s3 = 0f;
        int i = 0;
        for (; i + 4 <= n; i += 4) {
            long at = offset + 2L * i;
            s0 += widen(w.get(LE_SHORT, at), bf16) * x[xOff + i];
            s1 += widen(w.get(LE_SHORT, at + 2), bf16) * x[xOff + i + 1];
            s2 += widen(w.get(LE_SHORT, at + 4), bf16) * x[xOff + i + 2];
            s3 += widen(w.get(LE_SHORT, at + 6), bf16) * x[xOff + i + 3];
        }
        for (; i < n; i++) {
            s0 += widen(w.get(LE_SHORT, offset + 2L * i), bf16) * x[xOff + i];
        }
        return (s0 + s1) + (s2 + s3);
    }

    private static float widen(short h, boolean bf16) {
        return bf16 ? GgmlQuants.bf16ToFloat(h) : Float.float16ToFloat(h);
    }

    static float dotQ8_0(MemorySegment w, long offset, float[] x, int xOff, int n) {
        float acc = 0f;
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long at = offset + 34L * b;
            float d = Float.float16ToFloat(w.get(LE_SHORT, at));
            int xb = xOff + 32 * b;
            float s0 = 0f;
            float s1 = 0f;
            float s2 = 0f;
            float s3 = 0f;
            for (int j = 0; j < 32; j += 4) {
                long q = at + 2 + j;
                s0 += w.get(ValueLayout.JAVA_BYTE, q) * x[xb + j];
                s1 += w.get(ValueLayout.JAVA_BYTE, q + 1) * x[xb + j + 1];
                s2 += w.get(ValueLayout.JAVA_BYTE, q + 2) * x[xb + j + 2];
                s3 += w.get(ValueLayout.JAVA_BYTE, q + 3) * x[xb + j + 3];
            }
            acc += ((s0 + s1) + (s2 + s3)) * d;
        }
        return acc;
    }

    static float dotQ4_0(MemorySegment w, long offset, float[] x, int xOff, int n) {
        float acc = 0f;
        for (int b = 0, nb = n / 32; b < nb; b++) {
            long at = offset + 18L * b;
            float d = Float.float16ToFloat(w.get(LE_SHORT, at));
            int xb = xOff + 32 * b;
            float s0 = 0f;
            float s1 = 0f;
            for (int j = 0; j < 16; j++) {
                int q = u8(w, at + 2 + j);
                s0 += ((q & 0x0F) - 8) * x[xb + j];
                s1 += ((q >>> 4) - 8) * x[xb + 16 + j];
            }
            acc += (s0 + s1) * d;
        }
        return acc;
    }

    static float dotQ4K(MemorySegment w, long offset, float[] x, int xOff, int n) {
        float acc = 0f;
        for (int b = 0, nb = n / 256; b < nb; b++) {
            long at = offset + 144L * b;
            float d = Float.float16ToFloat(w.get(LE_SHORT, at));
            float dmin = Float.float16ToFloat(w.get(LE_SHORT, at + 2));
            long scales = at + 4;
            long qs = at + 16;
            int xb = xOff + 256 * b;
            for (int c = 0; c < 4; c++) {
                float qxLo = 0f;
                float qxHi = 0f;
                float xLo = 0f;
                float xHi = 0f;
                int xc = xb + 64 * c;
                for (int l = 0; l < 32; l++) {
                    int q = u8(w, qs + 32L * c + l);
                    float a = x[xc + l];
                    float h = x[xc + 32 + l];
                    qxLo += (q & 0xF) * a;
                    xLo += a;
                    qxHi += (q >>> 4) * h;
                    xHi += h;
                }
                acc += d * GgmlQuants.q4kScale(w, scales, 2 * c) * qxLo
                        - dmin * GgmlQuants.q4kMin(w, scales, 2 * c) * xLo
                        + d * GgmlQuants.q4kScale(w, scales, 2 * c + 1) * qxHi
                        - dmin * GgmlQuants.q4kMin(w, scales, 2 * c + 1) * xHi;
            }
        }
        return acc;
    }

    static float dotQ6K(MemorySegment w, long offset, float[] x, int xOff, int n) {
        float acc = 0f;
        for (int b = 0, nb = n / 256; b < nb; b++) {
            long at = offset + 210L * b;
            float d = Float.float16ToFloat(w.get(LE_SHORT, at + 208));
            for (int half = 0; half < 2; half++) {
                long ql = at + 64L * half;
                long qh = at + 128 + 32L * half;
                long sc = at + 192 + 8L * half;
                int yb = xOff + 256 * b + 128 * half;
                for (int g = 0; g < 2; g++) {
                    float s1 = 0f;
                    float s2 = 0f;
                    float s3 = 0f;
                    float s4 = 0f;
                    for (int l = 16 * g; l < 16 * g + 16; l++) {
                        int lo0 = u8(w, ql + l);
                        int lo1 = u8(w, ql + 32 + l);
                        int h = u8(w, qh + l);
                        s1 += (((lo0 & 0xF) | ((h & 3) << 4)) - 32) * x[yb + l];
                        s2 += (((lo1 & 0xF) | (((h >>> 2) & 3) << 4)) - 32) * x[yb + 32 + l];
                        s3 += (((lo0 >>> 4) | (((h >>> 4) & 3) << 4)) - 32) * x[yb + 64 + l];
                        s4 += (((lo1 >>> 4) | (((h >>> 6) & 3) << 4)) - 32) * x[yb + 96 + l];
                    }
                    acc += d
                            * (w.get(ValueLayout.JAVA_BYTE, sc + g) * s1
                                    + w.get(ValueLayout.JAVA_BYTE, sc + g + 2) * s2
                                    + w.get(ValueLayout.JAVA_BYTE, sc + g + 4) * s3
                                    + w.get(ValueLayout.JAVA_BYTE, sc + g + 6) * s4);
                }
            }
        }
        return acc;
    }
}
