package io.kvcache4j.hybrid;

/**
 * Read access to the keys of one region of a (layer, KV head), by row: what a {@link TokenSelector}
 * scores. Rows are numbered {@code 0 .. rows()-1}; keys are returned as the store reproduces them.
 * Not thread-safe unless the implementation says so.
 */
public interface KeyRows {

    /** Elements per key. */
    int headDim();

    /** Rows held. */
    int rows();

    /** Copies the key of {@code row} into {@code dst[offset..offset+headDim)}. */
    void readKey(int row, float[] dst, int offset);

    /**
     * Logits of rows {@code [0, rows)} for every query head of a group: {@code out[h·outStride + r] =
     * queries[h·d ..]·key(r)} for {@code h < group}. The default reads each key and takes {@code
     * group} dot products (summed in dimension order); stores with a paged layout score whole pages
     * with their attention kernel instead, as attention would.
     */
    default void scores(float[] queries, int group, int rows, float[] out, int outStride) {
        scoresByReading(this, new float[headDim()], queries, group, rows, out, outStride);
    }

    /** {@link #scores} by reading each key into {@code key} (at least {@code headDim} floats). */
    static void scoresByReading(
            KeyRows keys, float[] key, float[] queries, int group, int rows, float[] out, int outStride) {
        int d = keys.headDim();
        for (int r = 0; r < rows; r++) {
            keys.readKey(r, key, 0);
            for (int h = 0; h < group; h++) {
                float s = 0f;
                for (int i = 0; i < d; i++) {
                    s = Math.fma(queries[h * d + i], key[i], s);
                }
                out[h * outStride + r] = s;
            }
        }
    }
}
