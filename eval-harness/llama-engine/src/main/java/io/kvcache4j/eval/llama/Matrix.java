package io.kvcache4j.eval.llama;

/**
 * A weight matrix of {@code rows × cols} ({@code rows} output features, {@code cols} input
 * features) in whatever storage type the model file uses. Implementations compute dot products on
 * their own encoding (no full dequantisation) and are thread-safe (read-only).
 */
public interface Matrix {
    int rows();

    int cols();

    /**
     * {@code y[t*rows + r] = Σ_c W[r][c] · x[t*cols + c]} for {@code t < tokens}: a batch of {@code
     * tokens} input rows. May run on several threads; the result is deterministic.
     */
    void matmul(float[] x, int tokens, float[] y);

    /** Row {@code r} widened to floats (embedding lookup). */
    void row(int r, float[] dst, int dstOff);
}
