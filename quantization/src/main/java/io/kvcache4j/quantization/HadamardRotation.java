package io.kvcache4j.quantization;

import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Objects;
import java.util.SplittableRandom;

/**
 * A randomized Hadamard rotation {@code x → R·x} with {@code R = H·D/√d}: {@code D} a diagonal of
 * random signs drawn from a seed, {@code H} the {@code d × d} Sylvester–Hadamard matrix ({@code
 * H·Hᵀ = d·I}), applied in {@code O(d log d)} by the fast Walsh–Hadamard transform. {@code R} is
 * orthogonal, so {@code (R·q)·(R·k) = q·k}, and it spreads a vector's mass over all coordinates: a
 * channel outlier of size {@code a} becomes {@code ±a/√d} in every coordinate, which is what makes
 * per-channel low-bit codes cope with outlier channels. This is the rotation of QuaRot (Ashkboos et
 * al., "QuaRot: Outlier-Free 4-Bit Inference in Rotated LLMs", NeurIPS 2024) and the random
 * preconditioning of QJL and TurboQuant (Zandieh et al., arXiv:2406.03482 and arXiv:2504.19874).
 *
 * <p>{@link #wrap} puts the rotation in front of any {@link HeadStoreFactory}: its stores rotate
 * keys and values before the inner store sees them, rotate the pass's queries for the inner
 * attention and rotate the output back (see {@link RotatedHeadStore}).
 *
 * <p>Immutable and thread-safe; {@link #rotate} and {@link #unrotate} work in place.
 */
public final class HadamardRotation {
    /** The seed of the registered {@code +rht} storages. */
    public static final long DEFAULT_SEED = 0x5EED_2B17L;

    private final int dim;
    private final long seed;
    private final float[] signs;
    private final float norm;

    private HadamardRotation(int dim, long seed) {
        this.dim = dim;
        this.seed = seed;
        this.signs = new float[dim];
        SplittableRandom r = new SplittableRandom(seed);
        for (int i = 0; i < dim; i++) {
            signs[i] = r.nextBoolean() ? 1f : -1f;
        }
        this.norm = (float) (1.0 / Math.sqrt(dim));
    }

    /**
     * The rotation of {@code headDim}-element vectors with the signs of {@code seed}.
     *
     * @throws IllegalArgumentException unless {@code headDim} is a power of two (the Walsh–Hadamard
     *     transform's size)
     */
    public static HadamardRotation of(int headDim, long seed) {
        checkDim(headDim);
        return new HadamardRotation(headDim, seed);
    }

    static void checkDim(int headDim) {
        if (headDim < 1 || Integer.bitCount(headDim) != 1) {
            throw new IllegalArgumentException(
                    "headDim must be a power of two for the Walsh-Hadamard rotation, was " + headDim);
        }
    }

    /** Elements per vector. */
    public int dim() {
        return dim;
    }

    public long seed() {
        return seed;
    }

    /** {@code x[off..off+d) ← H·D·x/√d}. */
    public void rotate(float[] x, int off) {
        for (int i = 0; i < dim; i++) {
            x[off + i] *= signs[i];
        }
        fwht(x, off, dim);
        for (int i = 0; i < dim; i++) {
            x[off + i] *= norm;
        }
    }

    /** {@code x[off..off+d) ← D·H·x/√d}, the inverse (and transpose) of {@link #rotate}. */
    public void unrotate(float[] x, int off) {
        fwht(x, off, dim);
        for (int i = 0; i < dim; i++) {
            x[off + i] *= norm * signs[i];
        }
    }

    /** The rotation as a dense matrix in float64 ({@code R[i][j]}), for checks. */
    public double[][] matrix() {
        double[][] m = new double[dim][dim];
        double s = 1.0 / Math.sqrt(dim);
        for (int i = 0; i < dim; i++) {
            for (int j = 0; j < dim; j++) {
                // Sylvester: H[i][j] = (−1)^popcount(i & j)
                m[i][j] = (Integer.bitCount(i & j) & 1) == 0 ? s * signs[j] : -s * signs[j];
            }
        }
        return m;
    }

    /**
     * The unnormalised fast Walsh–Hadamard transform of {@code x[off..off+n)} in place ({@code n} a
     * power of two): {@code x ← H·x} with {@code H} in Sylvester (natural) order, butterflies of
     * growing span.
     */
    public static void fwht(float[] x, int off, int n) {
        for (int h = 1; h < n; h <<= 1) {
            for (int i = 0; i < n; i += h << 1) {
                for (int j = off + i, end = off + i + h; j < end; j++) {
                    float a = x[j];
                    float b = x[j + h];
                    x[j] = a + b;
                    x[j + h] = a - b;
                }
            }
        }
    }

    /**
     * A factory whose stores hold {@code inner}'s stores of rotated rows, with the signs of {@code
     * seed}; the layer attention is the CPU source with the process's kernel.
     */
    public static HeadStoreFactory wrap(HeadStoreFactory inner, long seed) {
        return wrap(inner, seed, AttentionKernels.get());
    }

    /**
     * A factory whose stores hold {@code inner}'s stores of rotated rows. The layer attention is the
     * CPU source on {@code kernel} over the rotating stores ({@code inner}'s own layer source, which
     * may read its stores directly, is not used). Creating a store for a head dimension that is not a
     * power of two throws {@link IllegalArgumentException} naming it.
     */
    public static HeadStoreFactory wrap(HeadStoreFactory inner, long seed, AttentionKernel kernel) {
        Objects.requireNonNull(inner, "inner");
        Objects.requireNonNull(kernel, "kernel");
        return new HeadStoreFactory() {
            @Override
            public HeadStore create(Spec spec) {
                HadamardRotation rotation = of(spec.headDim(), seed);
                return new RotatedHeadStore(inner.create(spec), rotation);
            }

            @Override
            public LayerAttention layerAttention(LayerContext context) {
                return LayerAttention.cpu(context, kernel);
            }

            @Override
            public String name() {
                return inner.name() + "+rht";
            }

            @Override
            public void checkBudget(io.kvcache4j.api.Budget budget) {
                inner.checkBudget(budget);
            }
        };
    }
}
