package io.kvcache4j.eviction;

import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import java.util.SplittableRandom;

/**
 * SimHash (sign random projection, Charikar 2002): {@code bits} Gaussian hyperplanes in {@code dim}
 * dimensions; bit {@code i} of a vector's signature is set when its projection on plane {@code i}
 * is non-negative. For two vectors at angle θ each bit differs with probability θ/π, so the Hamming
 * distance of signatures estimates the angle: {@code E[hamming] = bits·θ/π}.
 *
 * <p>Immutable after construction and thread-safe; projections use the cache's {@link
 * io.kvcache4j.internal.vectorization.VectorUtilSupport#signs} (each projection bit for bit {@link
 * io.kvcache4j.internal.vectorization.VectorUtilSupport#dot}) so they vectorize like attention does.
 */
final class SimHash {
    private final int bits;
    private final int dim;
    private final float[] planes;

    /** Planes drawn from N(0, 1) with a {@link SplittableRandom} seeded by {@code seed}. */
    SimHash(int bits, int dim, long seed) {
        if (bits < 1 || bits > 64) {
            throw new IllegalArgumentException("bits must be in [1, 64], was " + bits);
        }
        this.bits = bits;
        this.dim = dim;
        this.planes = new float[bits * dim];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < planes.length; i++) {
            planes[i] = (float) r.nextGaussian();
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

    /** The signature of {@code x[offset..offset+dim)}. */
    long signature(VectorUtilSupport kernel, float[] x, int offset) {
        return kernel.signs(planes, 0, bits, x, offset, dim);
    }

    /** Hamming distance of two signatures (compiles to {@code popcnt}). */
    static int hamming(long a, long b) {
        return Long.bitCount(a ^ b);
    }

    long bytes() {
        return 4L * planes.length;
    }
}
