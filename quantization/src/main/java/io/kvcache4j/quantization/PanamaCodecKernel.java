package io.kvcache4j.quantization;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API implementation of {@link CodecKernel} at the platform's preferred float width (8 or 16
 * lanes). Codes are loaded as {@code LANES} bytes, shifted and masked per bit plane on byte lanes
 * and widened to floats in registers ({@code B2F}, exact); scores keep one vector of key lanes per
 * head and values one vector of channels per head, so no lane reduction is needed and each lane
 * runs the same fused multiply-add chain as the scalar twin: the two agree to the bit, and every
 * operation used has one IEEE result in every JIT tier.
 *
 * <p>Loaded reflectively by {@link CodecKernels} only when {@code jdk.incubator.vector} is in the
 * boot layer.
 */
final class PanamaCodecKernel implements CodecKernel {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = F.length();
    private static final VectorSpecies<Byte> B =
            LANES >= 8 ? VectorSpecies.of(byte.class, VectorShape.forBitSize(LANES * 8)) : null;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    PanamaCodecKernel() {
        if (LANES != 8 && LANES != 16) {
            throw new UnsupportedOperationException("preferred float vector has " + LANES + " lanes; need 8 or 16");
        }
    }

    @Override
    public String name() {
        return "panama";
    }

    @Override
    public void unpack(MemorySegment src, long offset, int bits, int units, float[] dst, int dstOff) {
        int planes = 8 / bits;
        int mask = (1 << bits) - 1;
        for (int u = 0; u < units; u++) {
            long base = offset + 16L * u;
            int out = dstOff + u * 16 * planes;
            for (int k = 0; k < 16; k += LANES) {
                ByteVector b = ByteVector.fromMemorySegment(B, src, base + k, LE);
                if (bits == 8) {
                    ((FloatVector) b.convertShape(VectorOperators.B2F, F, 0)).intoArray(dst, out + k);
                    continue;
                }
                for (int m = 0; m < planes; m++) {
                    ByteVector c = b.lanewise(VectorOperators.LSHR, bits * m).and((byte) mask);
                    ((FloatVector) c.convertShape(VectorOperators.B2F, F, 0)).intoArray(dst, out + m * 16 + k);
                }
            }
        }
    }

    @Override
    public void scores(float[] q, int qOff, int d, float[] codes, float bias, float[] out, int outOff) {
        for (int j = 0; j < BLOCK; j += LANES) {
            FloatVector a = FloatVector.broadcast(F, bias);
            for (int i = 0; i < d; i++) {
                a = FloatVector.fromArray(F, codes, i * BLOCK + j).fma(FloatVector.broadcast(F, q[qOff + i]), a);
            }
            a.intoArray(out, outOff + j);
        }
    }

    @Override
    public void accumulate(
            float[] acc, int accOff, int d, int groupChannels, float[] v, int vStride, float[] w, int wStride, int nb) {
        for (int g0 = 0, g = 0; g0 < d; g0 += groupChannels, g++) {
            int end = Math.min(d, g0 + groupChannels);
            int c = g0;
            for (; c + LANES <= end; c += LANES) {
                FloatVector a = FloatVector.fromArray(F, acc, accOff + c);
                for (int j = 0; j < nb; j++) {
                    a = FloatVector.fromArray(F, v, j * vStride + c)
                            .fma(FloatVector.broadcast(F, w[j * wStride + g]), a);
                }
                a.intoArray(acc, accOff + c);
            }
            for (; c < end; c++) {
                float a = acc[accOff + c];
                for (int j = 0; j < nb; j++) {
                    a = Math.fma(w[j * wStride + g], v[j * vStride + c], a);
                }
                acc[accOff + c] = a;
            }
        }
    }
}
