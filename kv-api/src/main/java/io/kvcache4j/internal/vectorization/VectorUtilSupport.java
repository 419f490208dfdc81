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
     * Sign random projections of {@code count} vectors at once (SimHash signatures): vector {@code
     * v} is {@code x[xOff + v·xStride ..][0, n)}, and bit {@code p < bits} of {@code out[outOff + v]}
     * is set when its projection on plane {@code p}, {@code Σ_i x_i·planes[i·stride + p]} accumulated
     * by one fused multiply-add per {@code i} in increasing order from {@code +0}, is {@code >= 0} (a
     * NaN never is); bits from {@code bits} up are 0. The planes are stored dimension-major, {@code
     * stride} floats per dimension, so a vector implementation computes {@code LANES} planes per
     * instruction without a horizontal sum; both implementations give the same bits.
     *
     * @throws IllegalArgumentException if {@code bits} is not in [1, 64], {@code stride} is not a
     *     multiple of 16 at least {@code bits}, {@code count} or {@code n} is negative, or an array
     *     is too short for the indices described
     */
    void projectSigns(
            float[] planes,
            int bits,
            int stride,
            float[] x,
            int xOff,
            int xStride,
            int count,
            int n,
            long[] out,
            int outOff);

    /**
     * LazyEviction's recurrence step over slots {@code [0, n)}: each slot {@code i} whose {@code
     * mass[i] >= threshold} (a NaN never is) was important at query position {@code position}, and
     * its state, {@code (last << 32) | interval} with both halves non-negative ints and {@code last
     * <= position}, becomes {@code (position << 32) | max(interval, position − last)}; the other
     * slots keep theirs. Both implementations give the same longs.
     *
     * @throws IllegalArgumentException if {@code n} is negative or longer than {@code mass} or {@code
     *     state}, or {@code position} is negative
     */
    void recurrences(float[] mass, int n, float threshold, long[] state, int position);

    /**
     * HashEvict's step over slots {@code [0, n)}: each slot's Hamming distance to the query
     * signatures, {@code Σ_{w < pairs} bitCount(words[w] ^ (k | k << 32)) + Σ_{w < singles}
     * bitCount(words[pairs + w] ^ k)} for its signature {@code k = sig[s]} (two 32-bit query
     * signatures share a word in the first form), is added to {@code loss[s]} ({@code accumulate})
     * or replaces it. Returns the slot with the largest new loss among {@code s < candidates} whose
     * position {@code pos[s]} is in {@code [lo, hi)} (the unprotected ones), the lowest such slot on
     * ties, or −1 when there is none. Both implementations give the same longs and slot.
     *
     * @throws IllegalArgumentException if {@code n} or {@code candidates} is negative or beyond the
     *     arrays ({@code candidates <= n}), or {@code pairs}, {@code singles} do not fit in {@code
     *     words}
     */
    int hammingStep(
            long[] sig,
            long[] loss,
            int n,
            long[] words,
            int pairs,
            int singles,
            boolean accumulate,
            long[] pos,
            int candidates,
            long lo,
            long hi);
}
