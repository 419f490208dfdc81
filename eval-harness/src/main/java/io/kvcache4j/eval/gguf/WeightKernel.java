package io.kvcache4j.eval.gguf;

import java.lang.foreign.MemorySegment;

/**
 * Dot products of one stored weight row with a float vector, computed block by block on the stored
 * (possibly quantized) bytes without dequantizing the row into memory. Two implementations exist
 * with identical contracts: a Vector API one ({@code panama}) and a portable scalar twin ({@code
 * scalar}); {@link WeightKernels} picks one per process. Stateless and thread-safe.
 */
interface WeightKernel {

    /** {@code "panama"} or {@code "scalar"}. */
    String name();

    /**
     * {@code Σ w[i]·x[xOff+i]} for {@code i < n}, where {@code w} are the {@code n} elements of
     * {@code type} stored at {@code w + offset} ({@code n} a multiple of the type's block size).
     */
    float dot(GgmlType type, MemorySegment w, long offset, float[] x, int xOff, int n);
}
