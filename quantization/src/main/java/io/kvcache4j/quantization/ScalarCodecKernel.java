package io.kvcache4j.quantization;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Portable implementation of {@link CodecKernel}; the reference its Vector API twin matches bit for bit. */
final class ScalarCodecKernel implements CodecKernel {
    /** The shared instance (the kernel is stateless). */
    static final ScalarCodecKernel INSTANCE = new ScalarCodecKernel();

    private ScalarCodecKernel() {}

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void unpack(MemorySegment src, long offset, int bits, int units, float[] dst, int dstOff) {
        if (bits == 8) {
            for (int e = 0, n = units * 16; e < n; e++) {
                dst[dstOff + e] = src.get(ValueLayout.JAVA_BYTE, offset + e);
            }
            return;
        }
        int planes = 8 / bits;
        int mask = (1 << bits) - 1;
        for (int u = 0; u < units; u++) {
            long base = offset + 16L * u;
            int out = dstOff + u * 16 * planes;
            for (int k = 0; k < 16; k++) {
                int b = src.get(ValueLayout.JAVA_BYTE, base + k) & 0xFF;
                for (int m = 0; m < planes; m++) {
                    dst[out + m * 16 + k] = (b >>> (bits * m)) & mask;
                }
            }
        }
    }

    @Override
    public void scores(float[] q, int qOff, int d, float[] codes, float bias, float[] out, int outOff) {
        for (int j = 0; j < BLOCK; j++) {
            out[outOff + j] = bias;
        }
        for (int i = 0; i < d; i++) {
            float qi = q[qOff + i];
            int row = i * BLOCK;
            for (int j = 0; j < BLOCK; j++) {
                out[outOff + j] = Math.fma(qi, codes[row + j], out[outOff + j]);
            }
        }
    }

    @Override
    public void scoresPacked(
            MemorySegment src,
            long offset,
            int bits,
            float[] q,
            int qStride,
            float[] bias,
            int heads,
            int d,
            float[] out) {
        int planes = 8 / bits;
        int mask = (1 << bits) - 1;
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < BLOCK; j++) {
                out[h * BLOCK + j] = bias[h];
            }
        }
        for (int i = 0; i < d; i++) {
            long at = offset + 16L * (i / planes);
            int shift = bits * (i % planes);
            for (int j = 0; j < BLOCK; j++) {
                byte b = src.get(ValueLayout.JAVA_BYTE, at + j);
                float code = bits == 8 ? b : ((b & 0xFF) >>> shift) & mask;
                for (int h = 0; h < heads; h++) {
                    out[h * BLOCK + j] = Math.fma(q[h * qStride + i], code, out[h * BLOCK + j]);
                }
            }
        }
    }

    @Override
    public void accumulateValues(
            float[] acc,
            int heads,
            int d,
            int gc,
            float[] v,
            int vStride,
            float[] p,
            float[] scales,
            float[] zeros,
            int nb) {
        int groups = (d + gc - 1) / gc;
        for (int h = 0; h < heads; h++) {
            for (int c = 0; c < d; c++) {
                int g = c / gc;
                float a = acc[h * d + c];
                for (int j = 0; j < nb; j++) {
                    a = Math.fma(p[h * BLOCK + j] * scales[j * groups + g], v[j * vStride + c], a);
                }
                if (zeros != null) {
                    float zb = 0f;
                    for (int j = 0; j < nb; j++) {
                        zb = Math.fma(p[h * BLOCK + j], zeros[j * groups + g], zb);
                    }
                    a = a + zb;
                }
                acc[h * d + c] = a;
            }
        }
    }
}
