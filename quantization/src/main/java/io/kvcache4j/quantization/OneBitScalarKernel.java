package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;

/** The portable twin of {@link OneBitPanamaKernel}: the same sums in the same order, one lane at a time. */
final class OneBitScalarKernel implements OneBitKernel {
    /** The shared instance (the kernel is stateless). */
    static final OneBitScalarKernel INSTANCE = new OneBitScalarKernel();

    private OneBitScalarKernel() {}

    @Override
    public String name() {
        return "scalar";
    }

    @Override
    public void keyLogits(int[] codes, float[] folded, float[] beta, int d, int heads, float[] logits) {
        final int block = GroupAttention.BLOCK;
        for (int h = 0; h < heads; h++) {
            int q0 = h * d;
            for (int j = 0; j < block; j++) {
                float s = 0f;
                for (int c = 0; c < d; c++) {
                    if (((codes[c] >>> j) & 1) != 0) {
                        s += folded[q0 + c];
                    }
                }
                logits[h * block + j] = s + beta[h];
            }
        }
    }

    @Override
    public void accumulateValues(
            float[] weights, int nb, long[] rows, int words, float[] lo, float[] scale, int d, int heads, float[] acc) {
        final int block = GroupAttention.BLOCK;
        for (int h = 0; h < heads; h++) {
            int p0 = h * block;
            float total = 0f;
            for (int j = 0; j < nb; j++) {
                total += weights[p0 + j];
            }
            for (int c = 0; c < d; c++) {
                int w = c >>> 6;
                long bit = 1L << (c & 63);
                float s = 0f;
                for (int j = 0; j < nb; j++) {
                    if ((rows[j * words + w] & bit) != 0) {
                        s += weights[p0 + j];
                    }
                }
                acc[h * d + c] += Math.fma(lo[c], total, scale[c] * s);
            }
        }
    }
}
