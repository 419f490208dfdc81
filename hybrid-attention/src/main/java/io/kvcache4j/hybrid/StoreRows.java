package io.kvcache4j.hybrid;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.KeyScoring;
import io.kvcache4j.store.SlotSelection;

/**
 * The slow side of a split store kept by another {@link HeadStore}, e.g. a quantizing one (KIVI int4
 * codes in host memory): appends, attention on its own representation (on the codes, for a codec),
 * and key reads for the selectors. Its bytes are the store's own exact bytes; its memory comes from
 * the store's allocator, not from the slow {@link Tier}, so the slow tier's capacity does not bound
 * it (the slow tier is unbounded host memory).
 */
final class StoreRows implements SplitRows {
    private static final int[] NONE = new int[0];
    private final HeadStore store;
    private final int headDim;
    private final float[] key;
    /** The query holder of {@link #scores} on a {@link KeyScoring} store, made for the first group size seen. */
    private GroupAttention scoringState;

    StoreRows(HeadStore store, int headDim) {
        this.store = store;
        this.headDim = headDim;
        this.key = new float[headDim];
    }

    @Override
    public int headDim() {
        return headDim;
    }

    @Override
    public int rows() {
        return store.count();
    }

    @Override
    public void readKey(int row, float[] dst, int offset) {
        store.readKey(row, dst, offset);
    }

    /**
     * On the store's own encoding when it scores keys ({@link KeyScoring}: a codec scores its codes,
     * as its attention does); else each key as the store reproduces it, then the group's dot
     * products (in dimension order).
     */
    @Override
    public void scores(float[] queries, int group, int rows, float[] out, int outStride) {
        if (store instanceof KeyScoring scoring) {
            GroupAttention state = scoringState;
            if (state == null || state.group() != group) {
                state = scoringState = new GroupAttention(group, headDim);
            }
            state.begin(queries, 0, 1f);
            scoring.scoreKeys(state, rows, out, outStride);
            return;
        }
        KeyRows.scoresByReading(this, key, queries, group, rows, out, outStride);
    }

    @Override
    public void readValue(int row, float[] dst, int offset) {
        store.readValue(row, dst, offset);
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        store.append(keys, keysOffset, values, valuesOffset, rowStride, tokens);
    }

    @Override
    public void appendRow(float[] k, float[] v) {
        store.append(k, 0, v, 0, headDim, 1);
    }

    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        store.attend(state, selection);
    }

    /** The store's {@link KeyScoring#attendScored} when it has one: only the values are read. */
    @Override
    public void attendScored(GroupAttention state, SlotSelection selection, float[] logits, int offset, int stride) {
        if (store instanceof KeyScoring scoring) {
            scoring.attendScored(state, selection, logits, offset, stride);
        } else {
            store.attend(state, selection);
        }
    }

    @Override
    public void truncate(int newCount) {
        store.compact(newCount, NONE, 0, newCount);
    }

    @Override
    public long bytesHeld() {
        return store.bytesHeld();
    }

    @Override
    public void close() {
        store.close();
    }
}
