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
    public void accumulate(
            float[] acc, int accOff, int d, int groupChannels, float[] v, int vStride, float[] w, int wStride, int nb) {
        for (int c = 0; c < d; c++) {
            int g = c / groupChannels;
            float a = acc[accOff + c];
            for (int j = 0; j < nb; j++) {
                a = Math.fma(w[j * wStride + g], v[j * vStride + c], a);
            }
            acc[accOff + c] = a;
        }
    }
}
