package io.kvcache4j.attention;

/**
 * {@code exp(x)} in {@code float}, computed only with operations whose result IEEE 754 defines to
 * the bit (add, multiply, fused multiply-add, integer shifts and adds on the bit pattern, min/max),
 * so that the interpreter, C1, C2 and the lane-wise twin {@code PanamaAttentionKernel.exp} give the
 * same bits for the same input. The Vector API's {@code EXP} carries no such promise: C2 compiles
 * it to a vector math library call (SVML on x86) while the interpreter and C1 compute each lane with
 * {@code Math.exp}, and on AVX-512 the two differ in the last bit for about 1% of the arguments in
 * [−20, 0]. {@code Math.exp} itself is only specified to within 1 ulp.
 *
 * <p>Algorithm (Cody and Waite, "Software Manual for the Elementary Functions", 1980, ch. 6):
 *
 * <ol>
 *   <li>clamp {@code x} to [{@value #MIN_X}, {@value #MAX_X}]: below, {@code exp} rounds to 0
 *       (−∞ included); above, to +∞;
 *   <li>{@code n = rint(x·log₂e)}, by one FMA that adds 1.5·2²³ (which leaves the integer in the
 *       low mantissa bits);
 *   <li>{@code r = x − n·ln2} with ln2 split in two floats: {@code x − n·LN2_HI} is exact (one FMA,
 *       the difference is a multiple of 2⁻²⁵ below ½), {@code − n·LN2_LO} rounds once;
 *   <li>{@code exp(r)} for |r| ≤ ½·ln2 by its Taylor polynomial of degree 7 in Horner form, one FMA
 *       per degree (truncation error below 8·10⁻⁹ relative, an eighth of an ulp);
 *   <li>{@code exp(r)·2ⁿ} as two multiplications by powers of two built from exponent bits, {@code
 *       2^(n>>1)} then {@code 2^(n−(n>>1))}: the first is exact, the second rounds once, also when
 *       the result is subnormal.
 * </ol>
 *
 * <p>Accuracy: below 0.94 ulp of the exact value, subnormal results included, and correctly
 * rounded for 99.5% of arguments (checked against {@code StrictMath.exp} in float64 for every float
 * in [−104, 88.72]; {@code SoftmaxExpTest} repeats it on a strided sweep and random points). {@code
 * exp(±0) == 1} exactly, so the largest logit of a softmax weighs exactly 1; {@code exp(−∞) == +0};
 * NaN stays NaN. In this package the argument is always {@code s − max ≤ 0}, so results lie in [0,
 * 1].
 */
final class SoftmaxExp {
    /** Below this, {@code exp} rounds to +0 (e⁻¹⁰⁴ is under half the smallest subnormal). */
    static final float MIN_X = -104f;
    /** Above this, {@code exp} overflows to +∞. */
    static final float MAX_X = 89f;

    static final float LOG2E = 0x1.715476p0f;
    /** 1.5·2²³: adding it to |v| < 2²² rounds v to an integer held in the low mantissa bits. */
    static final float ROUND = 0x1.8p23f;

    /** The bits of {@link #ROUND}: {@code bits(ROUND + n) − ROUND_BITS == n}. */
    static final int ROUND_BITS = 0x4b400000;
    /** ln 2 rounded to float; {@code LN2_HI + LN2_LO} is ln 2 to about 2⁻⁵⁴. */
    static final float LN2_HI = 0x1.62e43p-1f;

    static final float LN2_LO = -0x1.05c61p-29f;
    // 1/k! rounded to float
    static final float C2 = 0x1.0p-1f;
    static final float C3 = 0x1.555556p-3f;
    static final float C4 = 0x1.555556p-5f;
    static final float C5 = 0x1.111112p-7f;
    static final float C6 = 0x1.6c16c2p-10f;
    static final float C7 = 0x1.a01a02p-13f;

    private SoftmaxExp() {}

    /** {@code exp(x)}, bit for bit the same in every JIT tier and in {@code PanamaAttentionKernel.exp}. */
    static float exp(float x) {
        x = Math.min(Math.max(x, MIN_X), MAX_X);
        float t = Math.fma(x, LOG2E, ROUND);
        float kf = t - ROUND;
        int n = Float.floatToRawIntBits(t) - ROUND_BITS;
        float r = Math.fma(kf, -LN2_HI, x);
        r = Math.fma(kf, -LN2_LO, r);
        float p = Math.fma(r, C7, C6);
        p = Math.fma(p, r, C5);
        p = Math.fma(p, r, C4);
        p = Math.fma(p, r, C3);
        p = Math.fma(p, r, C2);
        p = Math.fma(p, r, 1f);
        p = Math.fma(p, r, 1f);
        int n1 = n >> 1;
        return p * Float.intBitsToFloat((n1 + 127) << 23) * Float.intBitsToFloat((n - n1 + 127) << 23);
    }
}
