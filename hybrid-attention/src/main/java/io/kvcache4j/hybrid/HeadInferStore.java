package io.kvcache4j.hybrid;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.SlotSelection;
import java.lang.foreign.MemorySegment;

/**
 * The store of one (layer, KV head) under {@link HeadInferFactory}: exact f16 pages in the fast tier
 * (a resident head) or in the slow tier (an offloaded head). While its layer attends, an offloaded
 * head reads the whole pages that were staged into the fast tier for it, and the pages appended since
 * (the partly filled last page) in place; attention is bit-identical either way.
 *
 * <p>{@link #compact} and {@link #close} first cancel a transfer that still reads this store's pages,
 * and compaction makes a staged copy taken before it unusable (it is then not used). Not thread-safe
 * beyond {@link HeadStore}'s contract; range attends run concurrently.
 */
final class HeadInferStore implements HeadStore {
    private final TierPages pages;
    private final boolean resident;
    private HeadInferSchedule schedule;
    private Transfer pending;
    private int generation;
    private MemorySegment[] staged = new MemorySegment[0];
    private int stagedPages;

    HeadInferStore(TierPages pages, boolean resident) {
        this.pages = pages;
        this.resident = resident;
    }

    /** Whether this head lives in the fast tier. */
    boolean resident() {
        return resident;
    }

    TierPages pages() {
        return pages;
    }

    int generation() {
        return generation;
    }

    void attach(HeadInferSchedule s) {
        this.schedule = s;
    }

    /** The transfer that reads this store's pages now, if any. */
    void pending(Transfer t) {
        this.pending = t;
    }

    /**
     * Reads pages {@code [0, fullPages)} from {@code copy} (taken at {@code generation}) until {@link
     * #unstage()}; ignored when the store was compacted since.
     *
     * @return whether the copy is used
     */
    boolean stage(MemorySegment copy, int fullPages, int generation) {
        if (generation != this.generation || fullPages > pages.pageCount()) {
            return false;
        }
        if (staged.length < fullPages) {
            staged = new MemorySegment[Math.max(fullPages, staged.length * 2)];
        }
        long pb = pages.pageBytes();
        for (int i = 0; i < fullPages; i++) {
            staged[i] = copy.asSlice(i * pb, pb);
        }
        stagedPages = fullPages;
        return true;
    }

    /** Stops reading the staged copy. */
    void unstage() {
        stagedPages = 0;
        java.util.Arrays.fill(staged, null);
    }

    @Override
    public int count() {
        return pages.rows();
    }

    @Override
    public float maxMagnitude() {
        return pages.type().maxFinite();
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        pages.append(keys, keysOffset, values, valuesOffset, rowStride, tokens);
    }

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        cancelPending();
        generation++;
        pages.compact(from, sources, moved, newCount);
    }

    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        pages.attend(state, selection, staged, stagedPages);
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        pages.readKey(slot, dst, offset);
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        pages.readValue(slot, dst, offset);
    }

    @Override
    public long bytesHeld() {
        return pages.bytesHeld();
    }

    private void cancelPending() {
        Transfer t = pending;
        if (t != null) {
            t.cancel();
        }
    }

    @Override
    public void close() {
        cancelPending();
        unstage();
        pages.close();
        HeadInferSchedule s = schedule;
        schedule = null;
        if (s != null) {
            s.storeClosed();
        }
    }
}
