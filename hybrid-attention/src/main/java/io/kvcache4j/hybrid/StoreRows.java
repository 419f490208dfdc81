package io.kvcache4j.hybrid;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
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

    /** Each key as the store reproduces it, then the group's dot products (in dimension order). */
    @Override
    public void scores(float[] queries, int group, int rows, float[] out, int outStride) {
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
