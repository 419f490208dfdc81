package io.kvcache4j.quantization;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API implementation of {@link CodecKernel} at the platform's preferred float width (8 or 16
 * lanes). Codes are loaded as {@code LANES} bytes, widened to int lanes ({@code B2I}), shifted and
 * masked per bit plane and converted to floats in registers ({@code I2F}, exact); scores keep one
 * vector of key lanes per head and values one vector of channels per head, four heads of a group in
 * flight on each unpacked vector, so no lane reduction is needed and each lane runs the same fused
 * multiply-add chain as the scalar twin (the fold's bias reduces its partial lanes in the documented
 * tree): the two agree to the bit, and every operation used has one IEEE result in every JIT tier.
 *
 * <p>Loaded reflectively by {@link CodecKernels} only when {@code jdk.incubator.vector} is in the
 * boot layer.
 */
final class PanamaCodecKernel implements CodecKernel {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = F.length();
    private static final VectorSpecies<Byte> B =
            LANES >= 8 ? VectorSpecies.of(byte.class, VectorShape.forBitSize(LANES * 8)) : null;
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
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
        switch (bits) {
            case 8 -> {
                for (int e = 0, n = 16 * units; e < n; e += LANES) {
                    ((FloatVector) ByteVector.fromMemorySegment(B, src, offset + e, LE)
                                    .convertShape(VectorOperators.B2F, F, 0))
                            .intoArray(dst, dstOff + e);
                }
            }
            case 4 -> {
                for (int u = 0; u < units; u++) {
                    long base = offset + 16L * u;
                    int out = dstOff + 32 * u;
                    for (int k = 0; k < 16; k += LANES) {
                        IntVector x = codeBytes(src, base + k);
                        plane(x, 0, 15).intoArray(dst, out + k);
                        plane(x, 4, 15).intoArray(dst, out + 16 + k);
                    }
                }
            }
            case 2 -> {
                for (int u = 0; u < units; u++) {
                    long base = offset + 16L * u;
                    int out = dstOff + 64 * u;
                    for (int k = 0; k < 16; k += LANES) {
                        IntVector x = codeBytes(src, base + k);
                        plane(x, 0, 3).intoArray(dst, out + k);
                        plane(x, 2, 3).intoArray(dst, out + 16 + k);
                        plane(x, 4, 3).intoArray(dst, out + 32 + k);
                        plane(x, 6, 3).intoArray(dst, out + 48 + k);
                    }
                }
            }
            default -> throw new IllegalArgumentException("bits must be 8, 4 or 2, was " + bits);
        }
    }

    /** {@code LANES} code bytes at {@code at}, sign-extended to int lanes (the planes are masked out of the low byte). */
    private static IntVector codeBytes(MemorySegment src, long at) {
        return (IntVector) ByteVector.fromMemorySegment(B, src, at, LE).convertShape(VectorOperators.B2I, I, 0);
    }

    /** The codes of one bit plane as exact floats: {@code (x >>> shift) & mask}. */
    private static FloatVector plane(IntVector x, int shift, int mask) {
        IntVector c = shift == 0
                ? x.and(mask)
                : x.lanewise(VectorOperators.LSHR, shift).and(mask);
        return (FloatVector) c.convert(VectorOperators.I2F, 0);
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
        int last = heads - 1;
        // Four heads per pass; a group of fewer repeats its last head (same inputs, same bits, stored twice).
        for (int h0 = 0; h0 < heads; h0 += 4) {
            int h1 = Math.min(h0 + 1, last);
            int h2 = Math.min(h0 + 2, last);
            int h3 = Math.min(h0 + 3, last);
            int q0 = h0 * qStride;
            int q1 = h1 * qStride;
            int q2 = h2 * qStride;
            int q3 = h3 * qStride;
            for (int k = 0; k < BLOCK; k += LANES) {
                FloatVector a0 = FloatVector.broadcast(F, bias[h0]);
                FloatVector a1 = FloatVector.broadcast(F, bias[h1]);
                FloatVector a2 = FloatVector.broadcast(F, bias[h2]);
                FloatVector a3 = FloatVector.broadcast(F, bias[h3]);
                long at = offset + k;
                if (bits == 8) {
                    for (int i = 0; i < d; i++, at += 16) {
                        FloatVector c = (FloatVector)
                                ByteVector.fromMemorySegment(B, src, at, LE).convertShape(VectorOperators.B2F, F, 0);
                        a0 = c.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
                        a1 = c.fma(FloatVector.broadcast(F, q[q1 + i]), a1);
                        a2 = c.fma(FloatVector.broadcast(F, q[q2 + i]), a2);
                        a3 = c.fma(FloatVector.broadcast(F, q[q3 + i]), a3);
                    }
                } else {
                    int full = d / planes * planes;
                    int i = 0;
                    if (bits == 4) {
                        for (; i < full; i += 2, at += 16) {
                            IntVector x = codeBytes(src, at);
                            FloatVector c = plane(x, 0, 15);
                            a0 = c.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
                            a1 = c.fma(FloatVector.broadcast(F, q[q1 + i]), a1);
                            a2 = c.fma(FloatVector.broadcast(F, q[q2 + i]), a2);
                            a3 = c.fma(FloatVector.broadcast(F, q[q3 + i]), a3);
                            c = plane(x, 4, 15);
                            a0 = c.fma(FloatVector.broadcast(F, q[q0 + i + 1]), a0);
                            a1 = c.fma(FloatVector.broadcast(F, q[q1 + i + 1]), a1);
                            a2 = c.fma(FloatVector.broadcast(F, q[q2 + i + 1]), a2);
                            a3 = c.fma(FloatVector.broadcast(F, q[q3 + i + 1]), a3);
                        }
                    } else {
                        for (; i < full; i += 4, at += 16) {
                            IntVector x = codeBytes(src, at);
                            for (int m = 0; m < 4; m++) {
                                FloatVector c = plane(x, 2 * m, 3);
                                a0 = c.fma(FloatVector.broadcast(F, q[q0 + i + m]), a0);
                                a1 = c.fma(FloatVector.broadcast(F, q[q1 + i + m]), a1);
                                a2 = c.fma(FloatVector.broadcast(F, q[q2 + i + m]), a2);
                                a3 = c.fma(FloatVector.broadcast(F, q[q3 + i + m]), a3);
                            }
                        }
                    }
                    if (i < d) {
                        IntVector x = codeBytes(src, at);
                        for (int m = 0; i < d; m++, i++) {
                            FloatVector c = plane(x, bits * m, mask);
                            a0 = c.fma(FloatVector.broadcast(F, q[q0 + i]), a0);
                            a1 = c.fma(FloatVector.broadcast(F, q[q1 + i]), a1);
                            a2 = c.fma(FloatVector.broadcast(F, q[q2 + i]), a2);
                            a3 = c.fma(FloatVector.broadcast(F, q[q3 + i]), a3);
                        }
                    }
                }
                a3.intoArray(out, h3 * BLOCK + k);
                a2.intoArray(out, h2 * BLOCK + k);
                a1.intoArray(out, h1 * BLOCK + k);
                a0.intoArray(out, h0 * BLOCK + k);
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
        int last = heads - 1;
        boolean z = zeros != null;
        // Four heads per pass, each value vector loaded once for all four (a short group repeats its last
        // head: same inputs, same bits, stored twice).
        for (int h0 = 0; h0 < heads; h0 += 4) {
            int h1 = Math.min(h0 + 1, last);
            int h2 = Math.min(h0 + 2, last);
            int h3 = Math.min(h0 + 3, last);
            int p0 = h0 * BLOCK;
            int p1 = h1 * BLOCK;
            int p2 = h2 * BLOCK;
            int p3 = h3 * BLOCK;
            int o0 = h0 * d;
            int o1 = h1 * d;
            int o2 = h2 * d;
            int o3 = h3 * d;
            for (int g = 0, c0 = 0; c0 < d; g++, c0 += gc) {
                int end = Math.min(d, c0 + gc);
                float z0 = 0f;
                float z1 = 0f;
                float z2 = 0f;
                float z3 = 0f;
                if (z) {
                    for (int j = 0; j < nb; j++) {
                        float zj = zeros[j * groups + g];
                        z0 = Math.fma(p[p0 + j], zj, z0);
                        z1 = Math.fma(p[p1 + j], zj, z1);
                        z2 = Math.fma(p[p2 + j], zj, z2);
                        z3 = Math.fma(p[p3 + j], zj, z3);
                    }
                }
                int c = c0;
                for (; c + 2 * LANES <= end; c += 2 * LANES) {
                    FloatVector a0 = FloatVector.fromArray(F, acc, o0 + c);
                    FloatVector b0 = FloatVector.fromArray(F, acc, o0 + c + LANES);
                    FloatVector a1 = FloatVector.fromArray(F, acc, o1 + c);
                    FloatVector b1 = FloatVector.fromArray(F, acc, o1 + c + LANES);
                    FloatVector a2 = FloatVector.fromArray(F, acc, o2 + c);
                    FloatVector b2 = FloatVector.fromArray(F, acc, o2 + c + LANES);
                    FloatVector a3 = FloatVector.fromArray(F, acc, o3 + c);
                    FloatVector b3 = FloatVector.fromArray(F, acc, o3 + c + LANES);
                    for (int j = 0; j < nb; j++) {
                        float s = scales[j * groups + g];
                        FloatVector va = FloatVector.fromArray(F, v, j * vStride + c);
                        FloatVector vb = FloatVector.fromArray(F, v, j * vStride + c + LANES);
                        FloatVector w0 = FloatVector.broadcast(F, p[p0 + j] * s);
                        FloatVector w1 = FloatVector.broadcast(F, p[p1 + j] * s);
                        FloatVector w2 = FloatVector.broadcast(F, p[p2 + j] * s);
                        FloatVector w3 = FloatVector.broadcast(F, p[p3 + j] * s);
                        a0 = va.fma(w0, a0);
                        b0 = vb.fma(w0, b0);
                        a1 = va.fma(w1, a1);
                        b1 = vb.fma(w1, b1);
                        a2 = va.fma(w2, a2);
                        b2 = vb.fma(w2, b2);
                        a3 = va.fma(w3, a3);
                        b3 = vb.fma(w3, b3);
                    }
                    if (z) {
                        a0 = a0.add(z0);
                        b0 = b0.add(z0);
                        a1 = a1.add(z1);
                        b1 = b1.add(z1);
                        a2 = a2.add(z2);
                        b2 = b2.add(z2);
                        a3 = a3.add(z3);
                        b3 = b3.add(z3);
                    }
                    a3.intoArray(acc, o3 + c);
                    b3.intoArray(acc, o3 + c + LANES);
                    a2.intoArray(acc, o2 + c);
                    b2.intoArray(acc, o2 + c + LANES);
                    a1.intoArray(acc, o1 + c);
                    b1.intoArray(acc, o1 + c + LANES);
                    a0.intoArray(acc, o0 + c);
                    b0.intoArray(acc, o0 + c + LANES);
                }
                for (; c + LANES <= end; c += LANES) {
                    FloatVector a0 = FloatVector.fromArray(F, acc, o0 + c);
                    FloatVector a1 = FloatVector.fromArray(F, acc, o1 + c);
                    FloatVector a2 = FloatVector.fromArray(F, acc, o2 + c);
                    FloatVector a3 = FloatVector.fromArray(F, acc, o3 + c);
                    for (int j = 0; j < nb; j++) {
                        float s = scales[j * groups + g];
                        FloatVector va = FloatVector.fromArray(F, v, j * vStride + c);
                        a0 = va.fma(FloatVector.broadcast(F, p[p0 + j] * s), a0);
                        a1 = va.fma(FloatVector.broadcast(F, p[p1 + j] * s), a1);
                        a2 = va.fma(FloatVector.broadcast(F, p[p2 + j] * s), a2);
                        a3 = va.fma(FloatVector.broadcast(F, p[p3 + j] * s), a3);
                    }
                    if (z) {
                        a0 = a0.add(z0);
                        a1 = a1.add(z1);
                        a2 = a2.add(z2);
                        a3 = a3.add(z3);
                    }
                    a3.intoArray(acc, o3 + c);
                    a2.intoArray(acc, o2 + c);
                    a1.intoArray(acc, o1 + c);
                    a0.intoArray(acc, o0 + c);
                }
                for (; c < end; c++) {
                    for (int h = h0, hEnd = Math.min(heads, h0 + 4); h < hEnd; h++) {
                        float a = acc[h * d + c];
                        for (int j = 0; j < nb; j++) {
                            a = Math.fma(p[h * BLOCK + j] * scales[j * groups + g], v[j * vStride + c], a);
                        }
                        if (z) {
                            a = a + (h == h0 ? z0 : h == h0 + 1 ? z1 : h == h0 + 2 ? z2 : z3);
                        }
                        acc[h * d + c] = a;
                    }
                }
            }
        }
    }
}
