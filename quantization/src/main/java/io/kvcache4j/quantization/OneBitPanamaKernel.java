package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API implementation of {@link OneBitKernel} at the platform's preferred width (4, 8 or 16
 * float lanes). Codes become lane masks with {@link VectorMask#fromLong}, and a masked add adds the
 * folded query (keys: lanes are the keys of the block) or the weight (values: lanes are channels)
 * only where a bit is set. No horizontal reduction is needed in either direction, and every lane
 * adds in the order of its scalar twin, so results are the twin's to the bit.
 *
 * <p>Loaded reflectively by {@link OneBitKernels} only when {@code jdk.incubator.vector} is in the
 * boot layer.
 */
final class OneBitPanamaKernel implements OneBitKernel {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = F.length();

    OneBitPanamaKernel() {
        if (LANES < 4 || LANES > 16 || GroupAttention.BLOCK % LANES != 0) {
            throw new UnsupportedOperationException("preferred float vector has " + LANES + " lanes; need 4, 8 or 16");
        }
    }

    @Override
    public String name() {
        return "panama";
    }

    @Override
    public void keyLogits(int[] codes, float[] folded, float[] beta, int d, int heads, float[] logits) {
        final int block = GroupAttention.BLOCK;
        for (int h = 0; h < heads; h++) {
            int q0 = h * d;
            for (int lane0 = 0; lane0 < block; lane0 += LANES) {
                FloatVector a = FloatVector.zero(F);
                for (int c = 0; c < d; c++) {
                    VectorMask<Float> m = VectorMask.fromLong(F, codes[c] >>> lane0);
                    a = a.add(FloatVector.broadcast(F, folded[q0 + c]), m);
                }
                a.add(beta[h]).intoArray(logits, h * block + lane0);
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
            int c = 0;
            for (int bound = d - LANES; c <= bound; c += LANES) {
                int w = c >>> 6;
                int shift = c & 63;
                FloatVector s = FloatVector.zero(F);
                for (int j = 0; j < nb; j++) {
                    VectorMask<Float> m = VectorMask.fromLong(F, rows[j * words + w] >>> shift);
                    s = s.add(FloatVector.broadcast(F, weights[p0 + j]), m);
                }
                int o = h * d + c;
                FloatVector t = FloatVector.fromArray(F, lo, c)
                        .fma(
                                FloatVector.broadcast(F, total),
                                FloatVector.fromArray(F, scale, c).mul(s));
                FloatVector.fromArray(F, acc, o).add(t).intoArray(acc, o);
            }
            for (; c < d; c++) {
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
