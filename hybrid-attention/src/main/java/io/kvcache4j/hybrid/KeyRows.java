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
}
