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
}
