package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector API implementation of {@link OneBitKernel} at the platform's preferred width (8 or 16 float
 * lanes). Keys: the lanes are keys of the block; a code byte per key is widened to an int lane, its
 * nibbles index the quad tables with one in-register permute each ({@code selectFrom}: one table
 * vector at 16 lanes, two at 8), and four query heads share each loaded byte. Values: the lanes are
 * channels; a code byte per channel holds its bits of eight keys, and its nibbles index the tables of
 * the weights of key quads the same way. Tables are built by masked adds of broadcasts, which leave
 * a lane untouched where the twin skips the add; every lane adds in the order of its scalar twin, so
 * results are the twin's to the bit.
 *
 * <p>Loaded reflectively by {@link OneBitKernels} only when {@code jdk.incubator.vector} is in the
 * boot layer.
 */
final class OneBitPanamaKernel implements OneBitKernel {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = F.length();
    private static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    /** {@code LANES} code bytes, widened to the int lanes of {@link #I}. */
    private static final VectorSpecies<Byte> CODE_BYTES =
            VectorSpecies.of(byte.class, VectorShape.forBitSize(8 * Math.max(LANES, 8)));
    /** For table bit {@code b}: the entries {@code i < 16} whose bit {@code b} is set. */
    private static final long[] ENTRY_BITS = {0xAAAAL, 0xCCCCL, 0xF0F0L, 0xFF00L};

    private static final VectorMask<Float> E0 = VectorMask.fromLong(F, ENTRY_BITS[0]);
    private static final VectorMask<Float> E1 = VectorMask.fromLong(F, ENTRY_BITS[1]);
    private static final VectorMask<Float> E2 = VectorMask.fromLong(F, ENTRY_BITS[2]);
    private static final VectorMask<Float> E3 = VectorMask.fromLong(F, ENTRY_BITS[3]);
    private static final VectorMask<Float> E3_HIGH = VectorMask.fromLong(F, ENTRY_BITS[3] >>> 8);

    OneBitPanamaKernel() {
        if (LANES != 8 && LANES != 16) {
            throw new UnsupportedOperationException(
                    "preferred float vector has " + LANES + " lanes; the key tables need 8 or 16");
        }
    }

    @Override
    public String name() {
        return "panama";
    }

    @Override
    public void foldKeys(
            float[] queries, float[] keyLo, float[] keyScale, int d, int heads, float[] beta, float[] tables) {
        int quads = 2 * OneBitKernel.octets(d);
        // the folded query of one head at a time, zero-padded to whole quads, in the scratch tail
        int folded = heads * quads * 16;
        for (int h = 0; h < heads; h++) {
            int q0 = h * d;
            beta[h] = beta(queries, q0, keyLo, d);
            for (int c0 = 0; c0 < 4 * quads; c0 += LANES) {
                VectorMask<Float> m = F.indexInRange(c0, d);
                FloatVector.fromArray(F, queries, q0 + c0, m)
                        .mul(FloatVector.fromArray(F, keyScale, c0, m))
                        .intoArray(tables, folded + c0);
            }
            for (int k = 0, f = folded; k < quads; k++, f += 4) {
                int t0 = ((k >>> 1) * heads + h) * 32 + (k & 1) * 16;
                FloatVector f3 = FloatVector.broadcast(F, tables[f + 3]);
                FloatVector low = FloatVector.zero(F)
                        .add(FloatVector.broadcast(F, tables[f]), E0)
                        .add(FloatVector.broadcast(F, tables[f + 1]), E1)
                        .add(FloatVector.broadcast(F, tables[f + 2]), E2);
                low.add(f3, E3).intoArray(tables, t0);
                if (LANES == 8) {
                    low.add(f3, E3_HIGH).intoArray(tables, t0 + 8);
                }
            }
        }
    }

    /** {@code β} of one head: 16 lanes of FMA chains (one or two vectors), summed by halving. */
    private static float beta(float[] q, int q0, float[] lo, int d) {
        FloatVector a = FloatVector.zero(F);
        FloatVector b = FloatVector.zero(F);
        int c0 = 0;
        for (int bound = d - BETA_LANES; c0 <= bound; c0 += BETA_LANES) {
            a = FloatVector.fromArray(F, q, q0 + c0).fma(FloatVector.fromArray(F, lo, c0), a);
            if (LANES == 8) {
                b = FloatVector.fromArray(F, q, q0 + c0 + 8).fma(FloatVector.fromArray(F, lo, c0 + 8), b);
            }
        }
        if (c0 < d) {
            VectorMask<Float> m = F.indexInRange(c0, d);
            a = FloatVector.fromArray(F, q, q0 + c0, m).fma(FloatVector.fromArray(F, lo, c0, m), a);
            if (LANES == 8) {
                VectorMask<Float> m2 = F.indexInRange(c0 + 8, d);
                b = FloatVector.fromArray(F, q, q0 + c0 + 8, m2).fma(FloatVector.fromArray(F, lo, c0 + 8, m2), b);
            }
        }
        if (LANES == 16) {
            a = a.add(a.slice(8));
        } else {
            a = a.add(b);
        }
        a = a.add(a.slice(4));
        a = a.add(a.slice(2));
        a = a.add(a.slice(1));
        return a.lane(0);
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
        int h = 0;
        for (; h + 4 <= heads; h += 4) {
            for (int j0 = 0; j0 < GroupAttention.BLOCK; j0 += LANES) {
                logits4(codes, offset + j0, octets, tables, beta, h, heads, out, outOffset + j0, outStride);
            }
        }
        for (; h < heads; h++) {
            for (int j0 = 0; j0 < GroupAttention.BLOCK; j0 += LANES) {
                logits1(codes, offset + j0, octets, tables, beta, h, heads, out, outOffset + j0, outStride);
            }
        }
    }

    /** Code bytes of {@code LANES} keys at {@code at}, one per int lane. */
    private static IntVector codeBytes(MemorySegment codes, long at) {
        return (IntVector) ByteVector.fromMemorySegment(CODE_BYTES, codes, at, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.B2I, I, 0);
    }

    /** Table entries {@code tables[t0 + index]} for the nibbles {@code index} (0..15) in the lanes. */
    private static FloatVector lookup(IntVector index, float[] tables, int t0) {
        if (LANES == 16) {
            return index.selectFrom(FloatVector.fromArray(F, tables, t0).reinterpretAsInts())
                    .reinterpretAsFloats();
        }
        return index.selectFrom(
                        FloatVector.fromArray(F, tables, t0).reinterpretAsInts(),
                        FloatVector.fromArray(F, tables, t0 + 8).reinterpretAsInts())
                .reinterpretAsFloats();
    }

    /** Four heads' logits of {@code LANES} keys, each code byte loaded and split once. */
    private static void logits4(
            MemorySegment codes,
            long at,
            int octets,
            float[] tables,
            float[] beta,
            int h,
            int heads,
            float[] out,
            int outOffset,
            int outStride) {
        FloatVector a0 = FloatVector.zero(F);
        FloatVector a1 = FloatVector.zero(F);
        FloatVector a2 = FloatVector.zero(F);
        FloatVector a3 = FloatVector.zero(F);
        FloatVector b0 = FloatVector.zero(F);
        FloatVector b1 = FloatVector.zero(F);
        FloatVector b2 = FloatVector.zero(F);
        FloatVector b3 = FloatVector.zero(F);
        // the eight tables of an octet for heads h .. h+3 are contiguous: 128 floats from t
        for (int o = 0, t = 32 * h, step = 32 * heads; o < octets; o++, t += step) {
            IntVector x = codeBytes(codes, at + 16L * o);
            IntVector lo = x.and(15);
            IntVector hi = x.lanewise(VectorOperators.LSHR, 4).and(15);
            a0 = a0.add(lookup(lo, tables, t));
            b0 = b0.add(lookup(hi, tables, t + 16));
            a1 = a1.add(lookup(lo, tables, t + 32));
            b1 = b1.add(lookup(hi, tables, t + 48));
            a2 = a2.add(lookup(lo, tables, t + 64));
            b2 = b2.add(lookup(hi, tables, t + 80));
            a3 = a3.add(lookup(lo, tables, t + 96));
            b3 = b3.add(lookup(hi, tables, t + 112));
        }
        int o0 = outOffset + h * outStride;
        a0.add(b0).add(beta[h]).intoArray(out, o0);
        a1.add(b1).add(beta[h + 1]).intoArray(out, o0 + outStride);
        a2.add(b2).add(beta[h + 2]).intoArray(out, o0 + 2 * outStride);
        a3.add(b3).add(beta[h + 3]).intoArray(out, o0 + 3 * outStride);
    }

    /** One head's logits of {@code LANES} keys. */
    private static void logits1(
            MemorySegment codes,
            long at,
            int octets,
            float[] tables,
            float[] beta,
            int h,
            int heads,
            float[] out,
            int outOffset,
            int outStride) {
        FloatVector a = FloatVector.zero(F);
        FloatVector b = FloatVector.zero(F);
        for (int o = 0, t = 32 * h, step = 32 * heads; o < octets; o++, t += step) {
            IntVector x = codeBytes(codes, at + 16L * o);
            a = a.add(lookup(x.and(15), tables, t));
            b = b.add(lookup(x.lanewise(VectorOperators.LSHR, 4).and(15), tables, t + 16));
        }
        a = a.add(b);
        a.add(beta[h]).intoArray(out, outOffset + h * outStride);
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
            float total = 0f;
            for (int m = 0; m < 4; m++) {
                int w = w0 + 4 * m;
                FloatVector b3 = FloatVector.broadcast(F, weights[w + 3]);
                FloatVector low = FloatVector.zero(F)
                        .add(FloatVector.broadcast(F, weights[w]), E0)
                        .add(FloatVector.broadcast(F, weights[w + 1]), E1)
                        .add(FloatVector.broadcast(F, weights[w + 2]), E2);
                FloatVector t = low.add(b3, E3);
                t.intoArray(tables, t0 + 16 * m);
                if (LANES == 8) {
                    t = low.add(b3, E3_HIGH);
                    t.intoArray(tables, t0 + 16 * m + 8);
                }
                total += t.lane(LANES - 1);
            }
            FloatVector p = FloatVector.broadcast(F, total);
            int c = 0;
            for (int bound = d - LANES; c <= bound; c += LANES) {
                IntVector x0 = codeBytes(codes, offset + c);
                IntVector x1 = codeBytes(codes, offset + d + c);
                FloatVector sum = FloatVector.zero(F)
                        .add(lookup(x0.and(15), tables, t0))
                        .add(lookup(x0.lanewise(VectorOperators.LSHR, 4).and(15), tables, t0 + 16))
                        .add(lookup(x1.and(15), tables, t0 + 32))
                        .add(lookup(x1.lanewise(VectorOperators.LSHR, 4).and(15), tables, t0 + 48));
                int o = h * d + c;
                FloatVector.fromArray(F, acc, o)
                        .add(FloatVector.fromArray(F, lo, c)
                                .fma(p, FloatVector.fromArray(F, scale, c).mul(sum)))
                        .intoArray(acc, o);
            }
            OneBitScalarKernel.valueChannels(codes, offset, d, c, tables, t0, total, lo, scale, acc, h * d);
        }
    }
}
