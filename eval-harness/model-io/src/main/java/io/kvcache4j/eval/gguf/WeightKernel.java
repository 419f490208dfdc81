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

    /**
     * One stored row against {@code tokens} input rows: {@code y[yOff + t·yStride] = dot(type, w,
     * offset, x, t·n, n)} for {@code t < tokens}, bit for bit. Implementations may widen the row once
     * into {@code scratch} (at least {@code n} floats) and share each weight load among several
     * tokens; that is what makes a prefill matmul cheaper than {@code tokens} matvecs.
     */
    default void dotTokens(
            GgmlType type,
            MemorySegment w,
            long offset,
            float[] x,
            int tokens,
            int n,
            float[] y,
            int yOff,
            int yStride,
            float[] scratch) {
        for (int t = 0; t < tokens; t++) {
            y[yOff + t * yStride] = dot(type, w, offset, x, t * n, n);
        }
    }

    /**
     * {@code rows} stored rows, {@code rowBytes} apart from {@code offset}, against {@code tokens}
     * input rows: {@code y[yOff + r + t·yStride] = dot(type, w, offset + r·rowBytes, x, t·n, n)}, bit
     * for bit. {@code scratch} holds at least {@code rows·n} floats. Implementations may widen the
     * rows once and compute a tile of rows × tokens per pass, so that each input row loaded from
     * memory serves several weight rows (the input of a long prompt does not fit in a core's
     * caches; read once per weight row, it makes a prefill matmul bound by the cache bandwidth).
     */
    default void dotRowsTokens(
            GgmlType type,
            MemorySegment w,
            long offset,
            long rowBytes,
            int rows,
            float[] x,
            int tokens,
            int n,
            float[] y,
            int yOff,
            int yStride,
            float[] scratch) {
        for (int r = 0; r < rows; r++) {
            dotTokens(type, w, offset + r * rowBytes, x, tokens, n, y, yOff + r, yStride, scratch);
        }
    }
}
