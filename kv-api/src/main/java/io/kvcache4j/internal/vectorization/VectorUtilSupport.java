package io.kvcache4j.internal.vectorization;

/**
 * Vector arithmetic on float arrays, for the modules of kvcache4j (eviction signatures, codecs). Two
 * implementations with one contract, chosen by {@link VectorizationProvider}: the Vector API one and
 * its scalar twin. Stateless and thread-safe. Results do not depend on the JIT tier: lanes are summed
 * in a fixed order.
 */
public interface VectorUtilSupport {

    /** {@code Σ a[aOff+i]·b[bOff+i]} for {@code i < n}. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /**
     * The signs of {@code rows} dot products with one vector: bit {@code r} of the result is set when
     * {@link #dot dot}{@code (a, aOff + r·n, b, bOff, n) >= 0}, each product bit for bit the one
     * {@link #dot} gives. Rows follow each other in {@code a}; {@code rows} is in [0, 64].
     */
    long signs(float[] a, int aOff, int rows, float[] b, int bOff, int n);

    /**
     * Which of {@code a[aOff..aOff+n)} are {@code >= threshold} (a NaN never is), as a bit set: bit
     * {@code i & 63} of {@code bits[i >>> 6]} for element {@code i}. Writes the {@code ⌈n/64⌉} words
     * {@code bits[0..⌈n/64⌉)}, whose bits past {@code n} are 0.
     */
    void atLeast(float[] a, int aOff, int n, float threshold, long[] bits);
}
