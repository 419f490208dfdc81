package io.kvcache4j.eviction;

import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import java.util.SplittableRandom;

/**
 * SimHash (sign random projection, Charikar 2002): {@code bits} Gaussian hyperplanes in {@code dim}
 * dimensions; bit {@code i} of a vector's signature is set when its projection on plane {@code i}
 * is non-negative. For two vectors at angle θ each bit differs with probability θ/π, so the Hamming
 * distance of signatures estimates the angle: {@code E[hamming] = bits·θ/π}.
 *
 * <p>Immutable after construction and thread-safe. The planes are kept dimension-major (each
 * dimension's {@code bits} plane elements side by side, padded to a multiple of 16), so that the
 * kernel's {@link VectorUtilSupport#projectSigns} computes a vector's projections on 16 planes per
 * instruction and several vectors per pass.
 */
final class SimHash {
    private final int bits;
    private final int dim;
    /** Plane {@code p}'s element {@code i} at {@code planes[i·stride + p]}; padding lanes are 0. */
    private final float[] planes;

    private final int stride;

    /** Planes drawn from N(0, 1) with a {@link SplittableRandom} seeded by {@code seed}. */
    SimHash(int bits, int dim, long seed) {
        if (bits < 1 || bits > 64) {
            throw new IllegalArgumentException("bits must be in [1, 64], was " + bits);
        }
        this.bits = bits;
        this.dim = dim;
        this.stride = (bits + 15) & ~15;
        this.planes = new float[Math.multiplyExact(stride, dim)];
        // drawn plane by plane, as plane-major storage would hold them
        SplittableRandom r = new SplittableRandom(seed);
        for (int p = 0; p < bits; p++) {
            for (int i = 0; i < dim; i++) {
                planes[i * stride + p] = (float) r.nextGaussian();
            }
        }
    }

    /** A seed for ({@code layer}, {@code kvHead}) derived from a base seed (SplitMix64 finaliser). */
    static long seedFor(long seed, int layer, int kvHead) {
        long z = seed + 0x9E3779B97F4A7C15L * (((long) layer << 32) + kvHead + 1);
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    int bits() {
        return bits;
    }

    /**
     * The signatures of the {@code count} vectors {@code x[offset + v·xStride ..][0, dim)} into
     * {@code out[outOff ..]}.
     */
    void signatures(VectorUtilSupport kernel, float[] x, int offset, int xStride, int count, long[] out, int outOff) {
        kernel.projectSigns(planes, bits, stride, x, offset, xStride, count, dim, out, outOff);
    }

    /** The signature of {@code x[offset..offset+dim)} (allocates its result array: for tests). */
    long signature(VectorUtilSupport kernel, float[] x, int offset) {
        long[] out = new long[1];
        signatures(kernel, x, offset, dim, 1, out, 0);
        return out[0];
    }

    /** Hamming distance of two signatures (compiles to {@code popcnt}). */
    static int hamming(long a, long b) {
        return Long.bitCount(a ^ b);
    }

    long bytes() {
        return 4L * planes.length;
    }
}
