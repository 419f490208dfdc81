package io.kvcache4j.eval.llama;

import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;

/** A row-major {@code float[]} matrix: the engine's plain-Java weight type and the reference for others. */
public final class DenseMatrix implements Matrix {
    private static final VectorUtilSupport KERNEL =
            VectorizationProvider.getInstance().vectorUtil();

    private final int rows;
    private final int cols;
    private final float[] data;

    public DenseMatrix(int rows, int cols, float[] data) {
        if ((long) rows * cols != data.length) {
            throw new IllegalArgumentException(
                    "data has " + data.length + " floats; rows x cols = " + rows + " x " + cols);
        }
        this.rows = rows;
        this.cols = cols;
        this.data = data;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    /** The backing array (row-major); not a copy. */
    public float[] data() {
        return data;
    }

    @Override
    public void matmul(float[] x, int tokens, float[] y) {
        Parallel.forRange(rows, (from, to) -> {
            for (int t = 0; t < tokens; t++) {
                int xb = t * cols;
                for (int r = from; r < to; r++) {
                    y[t * rows + r] = KERNEL.dot(data, r * cols, x, xb, cols);
                }
            }
        });
    }

    @Override
    public void row(int r, float[] dst, int dstOff) {
        System.arraycopy(data, r * cols, dst, dstOff, cols);
    }
}
