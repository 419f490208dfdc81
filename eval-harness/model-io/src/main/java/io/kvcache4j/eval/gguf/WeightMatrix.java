package io.kvcache4j.eval.gguf;

/**
 * A 2-D weight tensor of a model, read in place from its (possibly quantized) storage: {@link
 * #rows()} output features of {@link #cols()} input features each; row {@code r} is stored as
 * {@code cols} consecutive elements (ggml's {@code ne[0] = cols}, {@code ne[1] = rows}). Products
 * are computed block by block on the stored bytes; nothing is dequantized into memory except by
 * {@link #rowToFloats}.
 *
 * <p><b>Determinism.</b> Every output element is computed by one thread as {@link #dotRow} of its
 * row with its input vector, in a fixed order; {@link #matvec} and {@link #matmul} split rows across
 * threads of one process-wide pool whose size is the common fork-join pool's parallelism (set it with {@code
 * -Djava.util.concurrent.ForkJoinPool.common.parallelism=N}), so results are bitwise identical for
 * any thread count, and {@code matmul} of {@code T} inputs equals {@code T} calls of {@code matvec}.
 *
 * <p><b>Thread-safety and lifetime.</b> Implementations are immutable and safe for concurrent use.
 * A matrix obtained from {@link GgufModel#weights} reads the model's mapping and fails with {@link
 * IllegalStateException} after the model is closed.
 *
 * <p>Index and length errors throw {@link IllegalArgumentException} or {@link
 * IndexOutOfBoundsException} naming the value and the allowed range.
 */
public interface WeightMatrix {

    /** The tensor's name in its file. */
    String name();

    /** The storage type. */
    GgmlType type();

    /** Number of rows (output features). */
    int rows();

    /** Elements per row (input features). */
    int cols();

    /** {@code Σ_i W[row][i]·x[xOff+i]} for {@code i < cols()}. */
    float dotRow(int row, float[] x, int xOff);

    /** Writes row {@code row} as floats into {@code dst[dstOff .. dstOff+cols())} (e.g. an embedding). */
    void rowToFloats(int row, float[] dst, int dstOff);

    /** {@code y[yOff+r] = dotRow(r, x, xOff)} for every row {@code r}. */
    void matvec(float[] x, int xOff, float[] y, int yOff);

    /** {@code y[r] = dotRow(r, x, 0)} for every row {@code r}. */
    default void matvec(float[] x, float[] y) {
        matvec(x, 0, y, 0);
    }

    /**
     * Batched product for prefill: {@code x} holds {@code tokens} input rows of {@code cols()}
     * floats back to back, {@code y} receives {@code tokens} output rows of {@code rows()} floats:
     * {@code y[t·rows + r] = dotRow(r, x, t·cols)}.
     */
    void matmul(float[] x, float[] y, int tokens);
}
