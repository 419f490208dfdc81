package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

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
    public void foldKeys(
            float[] queries, float[] keyLo, float[] keyScale, int d, int heads, float[] beta, float[] tables) {
        int quads = 2 * OneBitKernel.octets(d);
        for (int h = 0; h < heads; h++) {
            int q0 = h * d;
            beta[h] = betaSum(queries, q0, keyLo, d, 0, 1);
            for (int k = 0; k < quads; k++) {
                int t0 = ((k >>> 1) * heads + h) * 32 + (k & 1) * 16;
                for (int i = 0; i < 16; i++) {
                    float t = 0f;
                    for (int b = 0; b < 4; b++) {
                        int c = 4 * k + b;
                        if ((i >>> b & 1) != 0) {
                            t += c < d ? queries[q0 + c] * keyScale[c] : 0f;
                        }
                    }
                    tables[t0 + i] = t;
                }
            }
        }
    }

    /**
     * The halving sum of {@link OneBitKernel#foldKeys}'s {@code β} lanes: at width {@code w < 16}, the
     * sum at lane {@code l} is that of lanes {@code l} and {@code l + w} at width {@code 2w}; at width
     * 16 it is lane {@code l}'s chain.
     */
    private static float betaSum(float[] q, int q0, float[] lo, int d, int lane, int width) {
        if (width == BETA_LANES) {
            float p = 0f;
            int padded = (d + BETA_LANES - 1) / BETA_LANES * BETA_LANES;
            for (int c = lane; c < padded; c += BETA_LANES) {
                p = c < d ? Math.fma(q[q0 + c], lo[c], p) : Math.fma(0f, 0f, p);
            }
            return p;
        }
        return betaSum(q, q0, lo, d, lane, 2 * width) + betaSum(q, q0, lo, d, lane + width, 2 * width);
    }

    @Override
    public void keyLogits(
            MemorySegment codes,
            long offset,
            int d,
            float[] tables,
            float[] beta,
            int heads,
            float[] out,
            int outOffset,
            int outStride) {
        int octets = OneBitKernel.octets(d);
        int quads = 2 * octets;
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < GroupAttention.BLOCK; j++) {
                float even = 0f;
                float odd = 0f;
                for (int o = 0; o < octets; o++) {
                    int x = codes.get(ValueLayout.JAVA_BYTE, offset + 16L * o + j) & 0xFF;
                    int t0 = (o * heads + h) * 32;
                    even += tables[t0 + (x & 15)];
                    odd += tables[t0 + 16 + (x >>> 4)];
                }
                out[outOffset + h * outStride + j] = (even + odd) + beta[h];
            }
        }
    }

    @Override
    public void accumulateValues(
            float[] weights,
            MemorySegment codes,
            long offset,
            float[] lo,
            float[] scale,
            int d,
            int heads,
            float[] tables,
            float[] acc) {
        final int block = GroupAttention.BLOCK;
        for (int h = 0; h < heads; h++) {
            int w0 = h * block;
            int t0 = h * 64;
            for (int m = 0; m < 4; m++) {
                for (int i = 0; i < 16; i++) {
                    float t = 0f;
                    for (int b = 0; b < 4; b++) {
                        if ((i >>> b & 1) != 0) {
                            t += weights[w0 + 4 * m + b];
                        }
                    }
                    tables[t0 + 16 * m + i] = t;
                }
            }
            float total = 0f;
            for (int m = 0; m < 4; m++) {
                total += tables[t0 + 16 * m + 15];
            }
            valueChannels(codes, offset, d, 0, tables, t0, total, lo, scale, acc, h * d);
        }
    }

    /**
     * Channels {@code from .. d-1} of one head's value step of {@link #accumulateValues}, one at a
     * time: the four table entries of a channel's nibbles summed from {@code +0}, then {@code acc[a0 +
     * c] += fma(lo[c], total, scale[c]·S)}. The Vector API twin runs its tail channels here.
     */
    static void valueChannels(
            MemorySegment codes,
            long offset,
            int d,
            int from,
            float[] tables,
            int t0,
            float total,
            float[] lo,
            float[] scale,
            float[] acc,
            int a0) {
        for (int c = from; c < d; c++) {
            int x0 = codes.get(ValueLayout.JAVA_BYTE, offset + c) & 0xFF;
            int x1 = codes.get(ValueLayout.JAVA_BYTE, offset + d + c) & 0xFF;
            float s = 0f;
            s += tables[t0 + (x0 & 15)];
            s += tables[t0 + 16 + (x0 >>> 4)];
            s += tables[t0 + 32 + (x1 & 15)];
            s += tables[t0 + 48 + (x1 >>> 4)];
            acc[a0 + c] += Math.fma(lo[c], total, scale[c] * s);
        }
    }
}
