package io.kvcache4j.hybrid;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.SlotSelection;

/**
 * The rows of one side of a {@link SplitHeadStore}, in slot order: exact f16 pages in a tier
 * ({@link TierPages}) or the codes of another store ({@link StoreRows}, e.g. KIVI int4 in the slow
 * tier). Driven by one thread at a time.
 */
interface SplitRows extends KeyRows, AutoCloseable {

    /** Appends {@code tokens} rows, as {@link io.kvcache4j.store.HeadStore#append}. */
    void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens);

    /** Appends one row given as floats. */
    void appendRow(float[] key, float[] value);

    /** Attends the rows of {@code selection} into {@code state}'s running pass. */
    void attend(GroupAttention state, SlotSelection selection);

    /**
     * {@link #attend} with the rows' logits already computed by {@link #scores} for the same queries
     * (row {@code r} of head {@code h} at {@code logits[offset + h·stride + r]}): a store that can
     * reuse them ({@link io.kvcache4j.store.KeyScoring#attendScored}) reads only the values, with the
     * same result to the bit. Default: {@code attend}.
     */
    default void attendScored(GroupAttention state, SlotSelection selection, float[] logits, int offset, int stride) {
        attend(state, selection);
    }

    /** Copies the value of {@code row} into {@code dst[offset..offset+headDim)}. */
    void readValue(int row, float[] dst, int offset);

    /** Keeps rows {@code [0, newCount)}. */
    void truncate(int newCount);

    /** Bytes held, exactly. */
    long bytesHeld();

    /** Frees every row; idempotent. */
    @Override
    void close();
}
