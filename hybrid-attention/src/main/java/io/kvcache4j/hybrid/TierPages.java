package io.kvcache4j.hybrid;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.ValueChunks;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Exact rows of one (layer, KV head) in pages allocated from a {@link Tier}, in {@link
 * PagedHeadStore}'s layout: each page one block of {@code [keys: headDim × pageTokens][values:
 * pageTokens × headDim]}, keys dimension-major and values in {@link ValueChunks}, so that a range is scanned by the same {@link
 * AttentionKernel#scan} calls, with the same arguments, as {@link PagedHeadStore} makes: the outputs
 * are bit-identical to the exact store of the same type and page size.
 *
 * <p>A range may read its first pages from a staged copy ({@link #attend(GroupAttention,
 * SlotSelection, MemorySegment[], int)}): whole pages copied byte for byte into the fast tier by a
 * {@link Transfer}; the pages after them are read in place.
 *
 * <p>Appending allocates a page only when the last one is full; compaction frees every page past the
 * last occupied one. {@link #bytesHeld()} is the exact sum of the page blocks. Not thread-safe,
 * except that range attends (which write nothing) may run concurrently with each other.
 */
final class TierPages implements SplitRows {
    private final Tier tier;
    private final KvDType type;
    private final int headDim;
    private final int pageTokens;
    private final long rowBytes;
    private final long keyDimStride;
    private final long valuesOffset;
    private final long pageBytes;
    private final AttentionKernel kernel;
    private final ConversionSupport conversion =
            VectorizationProvider.getInstance().conversion();

    private MemorySegment[] pages = new MemorySegment[4];
    private int pageCount;
    private int count;
    private MemorySegment gather;
    /** Scratch of {@link #attendScored}: one block's logits per head. */
    private float[] scoredLogits = new float[0];

    private GroupAttention scoring;
    private boolean closed;

    TierPages(Tier tier, KvDType type, int headDim, int pageTokens, AttentionKernel kernel) {
        if (headDim <= 0) {
            throw new IllegalArgumentException("headDim must be >= 1, was " + headDim);
        }
        PagedHeadStore.checkPageTokens(pageTokens);
        this.tier = tier;
        this.type = type;
        this.headDim = headDim;
        this.pageTokens = pageTokens;
        this.kernel = kernel;
        this.rowBytes = (long) headDim * type.bytes();
        this.keyDimStride = (long) pageTokens * type.bytes();
        this.valuesOffset = rowBytes * pageTokens;
        this.pageBytes = tier.blockBytes(2L * headDim * type.bytes() * pageTokens);
    }

    /** Bytes of one page block. */
    long pageBytes() {
        return pageBytes;
    }

    int pageTokens() {
        return pageTokens;
    }

    KvDType type() {
        return type;
    }

    /** Pages held (the last one possibly partly filled). */
    int pageCount() {
        return pageCount;
    }

    /** The page blocks, {@code [0, pageCount())} live; for transfers. */
    MemorySegment[] pages() {
        return pages;
    }

    Tier tier() {
        return tier;
    }

    @Override
    public int headDim() {
        return headDim;
    }

    @Override
    public int rows() {
        return count;
    }

    @Override
    public long bytesHeld() {
        return pageCount * pageBytes;
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        ensureOpen();
        for (int t = 0; t < tokens; t++) {
            int page = count / pageTokens;
            int row = count % pageTokens;
            if (page == pageCount) {
                if (pageCount == pages.length) {
                    pages = Arrays.copyOf(pages, pages.length * 2);
                }
                pages[pageCount] = tier.allocate(pageBytes);
                pageCount++;
            }
            MemorySegment p = pages[page];
            int src = t * rowStride;
            conversion.encodeStrided(keys, keysOffset + src, p, (long) row * type.bytes(), keyDimStride, type, headDim);
            ValueChunks.encode(conversion, values, valuesOffset + src, p, this.valuesOffset, type, headDim, row);
            count++;
        }
    }

    /** Appends one row given as floats (the exact reproduction of a row of the same type). */
    @Override
    public void appendRow(float[] key, float[] value) {
        append(key, 0, value, 0, 0, 1);
    }

    /**
     * A list or bitmap selection with its logits given: only the selected values are gathered
     * ({@link PagedHeadStore#attendGatheredScored}), the bits of {@link #attend}; a range through
     * {@code attend}.
     */
    @Override
    public void attendScored(GroupAttention state, SlotSelection selection, float[] logits, int offset, int stride) {
        ensureOpen();
        if (selection.isRange() || selection.limit() > count || state.headDim() != headDim) {
            attend(state, selection);
            return;
        }
        if (gather == null) {
            gather = PagedHeadStore.gatherBuffer(type, headDim);
        }
        if (scoredLogits.length < state.group() * GroupAttention.BLOCK) {
            scoredLogits = new float[state.group() * GroupAttention.BLOCK];
        }
        PagedHeadStore.attendGatheredScored(
                state,
                selection,
                pages,
                type,
                headDim,
                pageTokens,
                kernel,
                gather,
                scoredLogits,
                logits,
                offset,
                stride);
    }

    /** Attends {@code selection} reading every page in place. */
    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        attend(state, selection, null, 0);
    }

    /**
     * Attends {@code selection}; a range reads its pages below {@code stagedPages} from {@code
     * staged[page]} (copies of the same bytes) and the rest in place.
     */
    void attend(GroupAttention state, SlotSelection selection, MemorySegment[] staged, int stagedPages) {
        ensureOpen();
        if (selection.limit() > count) {
            throw new IllegalArgumentException(
                    "selection reaches slot " + (selection.limit() - 1) + " but the store holds " + count);
        }
        if (selection.isRange()) {
            int from = selection.from();
            int to = selection.to();
            for (int slot = from; slot < to; ) {
                int page = slot / pageTokens;
                int row = slot % pageTokens;
                int rows = Math.min(pageTokens - row, to - slot);
                MemorySegment p = page < stagedPages ? staged[page] : pages[page];
                kernel.scan(state, p, 0, pageTokens, valuesOffset, type, row, rows, slot - from);
                slot += rows;
            }
            return;
        }
        if (gather == null) {
            gather = PagedHeadStore.gatherBuffer(type, headDim);
        }
        PagedHeadStore.attendGathered(state, selection, pages, type, headDim, pageTokens, kernel, gather);
    }

    /**
     * Scores whole pages with the attention kernel ({@link AttentionKernel#scores}): the keys are
     * dimension-major in each page, so one vector load fetches a dimension of 16 keys and no key is
     * copied out. Allocates only when the group size changes.
     */
    @Override
    public void scores(float[] queries, int group, int rows, float[] out, int outStride) {
        ensureOpen();
        if (rows < 0 || rows > count) {
            throw new IllegalArgumentException("rows " + rows + " out of range [0, " + count + "]");
        }
        if (scoring == null || scoring.group() != group) {
            scoring = new GroupAttention(group, headDim, kernel);
        }
        scoring.begin(queries, 0, 1f);
        for (int p = 0, r0 = 0; r0 < rows; p++, r0 += pageTokens) {
            kernel.scores(scoring, pages[p], 0, pageTokens, type, Math.min(pageTokens, rows - r0), out, r0, outStride);
        }
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        checkSlot(slot);
        conversion.decodeStrided(
                pages[slot / pageTokens],
                (long) (slot % pageTokens) * type.bytes(),
                keyDimStride,
                type,
                dst,
                offset,
                headDim);
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        checkSlot(slot);
        ValueChunks.decode(
                conversion, pages[slot / pageTokens], valuesOffset, type, headDim, slot % pageTokens, dst, offset);
    }

    /** Compacts as {@link io.kvcache4j.store.HeadStore#compact}, freeing every page past the last occupied one. */
    void compact(int from, int[] sources, int moved, int newCount) {
        ensureOpen();
        if (from < 0 || moved < 0 || from + moved > newCount || newCount > count) {
            throw new IllegalArgumentException("compact(from " + from + ", moved " + moved + ", newCount " + newCount
                    + ") out of range for " + count + " slots");
        }
        for (int j = 0; j < moved; j++) {
            int s = sources[j];
            if (s != from + j) {
                copySlot(s, from + j);
            }
        }
        truncate(newCount);
    }

    /** Keeps rows {@code [0, newCount)} and frees the pages past them. */
    @Override
    public void truncate(int newCount) {
        if (newCount < 0 || newCount > count) {
            throw new IllegalArgumentException("newCount " + newCount + " out of range [0, " + count + "]");
        }
        count = newCount;
        int needed = (newCount + pageTokens - 1) / pageTokens;
        while (pageCount > needed) {
            MemorySegment page = pages[--pageCount];
            pages[pageCount] = null;
            tier.free(page);
        }
    }

    private void copySlot(int from, int to) {
        MemorySegment src = pages[from / pageTokens];
        MemorySegment dst = pages[to / pageTokens];
        long fr = from % pageTokens;
        long tr = to % pageTokens;
        int e = type.bytes();
        for (int i = 0; i < headDim; i++) {
            MemorySegment.copy(src, i * keyDimStride + fr * e, dst, i * keyDimStride + tr * e, e);
        }
        ValueChunks.copy(src, valuesOffset, (int) fr, dst, valuesOffset, (int) tr, headDim, e);
    }

    private void checkSlot(int slot) {
        ensureOpen();
        if (slot < 0 || slot >= count) {
            throw new IndexOutOfBoundsException("slot " + slot + " out of range [0, " + count + ")");
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("store is closed");
        }
    }

    /** Frees every page. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        while (pageCount > 0) {
            tier.free(pages[--pageCount]);
            pages[pageCount] = null;
        }
        count = 0;
    }
}
