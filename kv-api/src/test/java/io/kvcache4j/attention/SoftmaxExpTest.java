package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvcache4j.FreshJvm;
import io.kvcache4j.TestSeeds;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link SoftmaxExp} and its lane-wise twin against {@code StrictMath.exp} in float64: at most 1
 * ulp over the whole useful range, the same bits from both twins, and the special values exact.
 */
class SoftmaxExpTest {
    /** Every 97th float bit pattern (all binades, subnormal results included) plus random points. */
    private static final int STRIDE = 97;

    private static final int RANDOM_POINTS = 1 << 20;

    /** The error in ulps of the correctly rounded result, subnormal ulps below 2^-126. */
    static double ulpError(float got, double exact) {
        double ulp = Math.scalb(1.0, Math.max(Math.getExponent(exact), Float.MIN_EXPONENT) - 23);
        return Math.abs(got - exact) / ulp;
    }

    /**
     * The inputs: strided bit patterns of [−104, 0] and of [0, 88.72] (exp(88.72) is just under
     * {@code Float.MAX_VALUE}), then random ones.
     */
    static float[] inputs(long seed) {
        int negative = Float.floatToRawIntBits(104f) / STRIDE + 1;
        int positive = Float.floatToRawIntBits(88.72f) / STRIDE + 1;
        float[] x = new float[negative + positive + RANDOM_POINTS];
        int n = 0;
        for (int i = 0; i < negative; i++) {
            x[n++] = -Float.intBitsToFloat(i * STRIDE);
        }
        for (int i = 0; i < positive; i++) {
            x[n++] = Float.intBitsToFloat(i * STRIDE);
        }
        SplittableRandom r = TestSeeds.random(seed);
        while (n < x.length) {
            // uniform in [−104, 0) for most, in [−1, 1) for a quarter: softmax arguments are near 0
            x[n++] = r.nextInt(4) == 0 ? (float) (r.nextDouble() * 2 - 1) : (float) (-104 * r.nextDouble());
        }
        return x;
    }

    @Test
    void scalarIsWithinOneUlpOfTheExactValue() {
        long seed = TestSeeds.seed("exp-accuracy");
        float[] x = inputs(seed);
        double worst = 0;
        float worstAt = 0;
        long correctlyRounded = 0;
        for (float v : x) {
            double exact = StrictMath.exp(v);
            float got = SoftmaxExp.exp(v);
            double e = ulpError(got, exact);
            if (e > worst) {
                worst = e;
                worstAt = v;
            }
            if (got == (float) exact) {
                correctlyRounded++;
            }
        }
        System.out.printf(
                "[exp] %d inputs: max error %.4f ulp at %s, %.3f%% correctly rounded%n",
                x.length, worst, Float.toHexString(worstAt), 100.0 * correctlyRounded / x.length);
        assertTrue(worst <= 1.0, "max error " + worst + " ulp at " + Float.toHexString(worstAt) + " seed=" + seed);
        assertTrue(correctlyRounded >= 0.99 * x.length, correctlyRounded + " of " + x.length + " correctly rounded");
    }

    @Test
    void specialValuesAreExact() {
        assertEquals(Float.floatToRawIntBits(1f), Float.floatToRawIntBits(SoftmaxExp.exp(0f)));
        assertEquals(Float.floatToRawIntBits(1f), Float.floatToRawIntBits(SoftmaxExp.exp(-0f)));
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(SoftmaxExp.exp(Float.NEGATIVE_INFINITY)));
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(SoftmaxExp.exp(-104f)));
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(SoftmaxExp.exp(-Float.MAX_VALUE)));
        assertEquals(Float.MIN_VALUE, SoftmaxExp.exp(-103.5f), "exp(-103.5) rounds to the smallest subnormal");
        assertEquals(Float.POSITIVE_INFINITY, SoftmaxExp.exp(89f));
        assertEquals(Float.POSITIVE_INFINITY, SoftmaxExp.exp(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(SoftmaxExp.exp(Float.NaN)));
        for (int k = -149; k <= 127; k++) {
            float x = (float) (k * Math.log(2));
            assertTrue(ulpError(SoftmaxExp.exp(x), StrictMath.exp(x)) <= 1.0, "near 2^" + k);
        }
    }

    @Test
    void vectorLanesHaveTheScalarBits() {
        assumeTrue(FreshJvm.hasVectorModule(), "jdk.incubator.vector is not in the boot layer");
        long seed = TestSeeds.seed("exp-twins");
        float[] in = inputs(seed);
        float[] specials = {
            0f,
            -0f,
            -1e-30f,
            -Float.MIN_VALUE,
            -103.5f,
            -104f,
            -104.5f,
            -1e30f,
            Float.NEGATIVE_INFINITY,
            Float.NaN,
            88.72f,
            89f,
            1e30f,
            Float.POSITIVE_INFINITY,
            -87.33655f,
            -0.34657359f
        };
        int lanes = PanamaLanes.lanes();
        int n = (in.length + specials.length + lanes - 1) / lanes * lanes;
        float[] x = new float[n];
        System.arraycopy(specials, 0, x, 0, specials.length);
        System.arraycopy(in, 0, x, specials.length, in.length);
        float[] got = new float[n];
        PanamaLanes.exp(x, got, n);
        for (int i = 0; i < n; i++) {
            float want = SoftmaxExp.exp(x[i]);
            if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got[i])) {
                assertEquals(
                        Float.toHexString(want),
                        Float.toHexString(got[i]),
                        "exp(" + Float.toHexString(x[i]) + ") lane " + (i % lanes) + " seed=" + seed);
            }
        }
    }

    /**
     * {@link ScalarAttentionKernel#blockSum} is accurate, and it is the order of the Vector API
     * kernel's lane sum: with 8 or 16 lanes, {@code dot} of {@code [p, 0…]} (32 floats) with ones
     * reduces the lanes {@code p[i] + p[i + 8]} by the same butterfly.
     */
    @Test
    void blockSumIsAccurateAndTheVectorKernelsOrder() {
        long seed = TestSeeds.seed("block-sum");
        SplittableRandom r = TestSeeds.random(seed);
        AttentionKernel active = AttentionKernels.get();
        boolean sameOrder = active != AttentionKernels.scalar() && PanamaLanes.lanes() >= 8;
        float[] p = new float[2 * GroupAttention.BLOCK];
        float[] ones = new float[p.length];
        java.util.Arrays.fill(ones, 1f);
        for (int trial = 0; trial < 10_000; trial++) {
            double exact = 0;
            double mag = 0;
            for (int j = 0; j < GroupAttention.BLOCK; j++) {
                // softmax weights in [0, 1], some of them 0 (keys past the end of a block)
                p[j] = r.nextInt(5) == 0 ? 0f : (float) r.nextDouble();
                exact += p[j];
                mag += Math.abs(p[j]);
            }
            float got = ScalarAttentionKernel.blockSum(p, 0);
            // pairwise summation of 16 terms: at most log2(16) = 4 roundings, |error| <= 4u·Σ|p| < 4 ulp(Σ|p|)
            assertEquals(exact, got, 4 * Math.ulp((float) mag), "seed=" + seed);
            if (sameOrder) {
                assertEquals(
                        Float.floatToRawIntBits(got),
                        Float.floatToRawIntBits(((io.kvcache4j.internal.vectorization.VectorUtilSupport) active)
                                .dot(p, 0, ones, 0, 32)),
                        "seed=" + seed);
            }
        }
    }
}
