package io.kvcache4j.store;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.ValueChunks;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Exact, ragged, paged, off-heap storage of the keys and values of one (layer, KV head).
 *
 * <p>Memory: fixed-size pages of {@code pageTokens} slots (a multiple of {@link
 * GroupAttention#BLOCK}), each one off-heap block laid out as {@code [keys: headDim ×
 * pageTokens][values: pageTokens × headDim]} in the storage type. Keys are dimension-major within
 * the page (see {@link AttentionKernel}) so the attention kernel scores a block of keys with
 * vertical vector operations only; values are in {@link ValueChunks} of {@code pageTokens} rows, so
 * the value step reads them in address order. Appending allocates a page only when the last one is full, so
 * the store grows without copying; compaction frees every page past the last occupied one at once,
 * except that one free page is kept when a compaction removed fewer than {@code pageTokens} slots
 * (the steady state of a decode-time policy at a budget that is a multiple of the page size would
 * otherwise allocate and free a page every step); a spare that no append took before the next
 * compaction is freed then. {@link #bytesHeld()} is the exact sum of the blocks held, the spare page
 * included.
 *
 * <p>Placement: where {@link NativeMemory#reserve regions} are available (Linux) and a page is a
 * whole number of the operating system's pages, the store reserves address space in regions
 * (the first of 1 MB, each next twice the last, up to 64 MB; no memory behind them) and commits
 * page {@code i} at the {@code i}-th page position of its regions, so its pages lie at consecutive
 * addresses even when the stores of a layer grow together, one page each in turn. Attention reads a
 * store's pages in order, and the hardware prefetcher follows one run of pages better: two KV heads'
 * pages alternating in memory made attention over them 1.10× slower at 2K tokens per head and up to
 * 2.5× at 32K ({@code PageLayoutBenchmark.paired}).
 * A freed region page returns its memory to the system at once ({@link NativeMemory#decommit}),
 * which costs a system call, and its next use a page fault per system page; so a compaction keeps
 * the lowest of the region pages it frees committed as spares, up to {@link #maxSpares} (one, up to
 * an eighth of the pages still held, at most 8), for a policy that grows back between batch
 * evictions, and decommits the spares that appends since the last compaction did not take. {@link
 * #bytesHeld()} counts them. Elsewhere, or where a region cannot be reserved, each page is its own
 * block.
 *
 * <p>Attention over a range reads the pages in place; over a bitmap or a list it gathers up to
 * {@link GroupAttention#BLOCK} selected rows at a time into an on-heap page of one block.
 *
 * <p>Ownership: the store owns its pages and frees them in {@link #close()}. Not thread-safe.
 */
public final class PagedHeadStore implements HeadStore, KeyScoring {
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

    /** Whether pages go to regions (until a reservation fails; later pages are blocks then). */
    private boolean regionsWanted;

    private MemorySegment[] regions = new MemorySegment[0];
    /** Page index each region starts at. */
    private int[] regionFirst = new int[0];

    private int regionCount;
    /** Pages the regions have room for: page {@code i < regionPages} is a region's, the rest blocks. */
    private int regionPages;

    private MemorySegment spare;
    /** Whether an append took the spare page since the last compaction. */
    private boolean spareTaken;
    /**
     * Region pages kept committed past the last occupied one, at indices {@code [pageCount,
     * pageCount + spares)}; their segments stay in {@code pages}.
     */
    private int spares;
    /** Whether an append took a region spare since the last compaction. */
    private boolean sparesTaken;
    /** Whether a token was appended since the last compaction. */
    private boolean appended;

    private int count;
    private MemorySegment gather;
    /** Scratch of {@link #attendScored}: one block's logits per head. */
    private float[] scoredLogits = new float[0];

    private boolean closed;

    /** First and largest region, in bytes of address space. */
    static final long FIRST_REGION_BYTES = 1L << 20;

    static final long MAX_REGION_BYTES = 64L << 20;

    /** Creates an empty store, its pages in regions where available (see the class comment). */
    public PagedHeadStore(KvDType type, int headDim, int pageTokens, AttentionKernel kernel) {
        this(type, headDim, pageTokens, kernel, true);
    }

    /**
     * Creates an empty store; {@code regions == false} makes every page its own block wherever
     * regions are available (to measure what placement costs).
     */
    public PagedHeadStore(KvDType type, int headDim, int pageTokens, AttentionKernel kernel, boolean regions) {
        if (headDim <= 0) {
            throw new IllegalArgumentException("headDim must be >= 1, was " + headDim);
        }
        checkPageTokens(pageTokens);
        this.type = type;
        this.headDim = headDim;
        this.pageTokens = pageTokens;
        this.kernel = kernel;
        this.rowBytes = (long) headDim * type.bytes();
        this.keyDimStride = (long) pageTokens * type.bytes();
        this.valuesOffset = rowBytes * pageTokens;
        this.pageBytes = pageBytes(type, headDim, pageTokens);
        long osPage = NativeMemory.regionPageSize();
        this.regionsWanted = regions && osPage > 0 && pageBytes % osPage == 0;
    }

    /**
     * Whether page {@code i} of this store lies at the {@code i}-th page position of its regions (its
     * pages consecutive in memory), rather than in a block of its own.
     */
    public boolean contiguousPages() {
        return regionsWanted || regionPages > 0;
    }

    /** The address of page {@code page} (tests check placement with it). */
    long pageAddress(int page) {
        ensureOpen();
        if (page < 0 || page >= pageCount) {
            throw new IndexOutOfBoundsException("page " + page + " out of range [0, " + pageCount + ")");
        }
        return pages[page].address();
    }

    /** A page for index {@code pageCount}: a spare, a region's, or a block. */
    private MemorySegment newPage(int index) {
        if (spares > 0) {
            spares--;
            sparesTaken = true;
            return pages[index];
        }
        if (spare != null) {
            MemorySegment p = spare;
            spare = null;
            spareTaken = true;
            return p;
        }
        if (index >= regionPages && regionsWanted) {
            reserveRegion();
        }
        if (index < regionPages) {
            int r = regionOf(index);
            long offset = (long) (index - regionFirst[r]) * pageBytes;
            NativeMemory.commit(regions[r], offset, pageBytes);
            return regions[r].asSlice(offset, pageBytes);
        }
        return NativeMemory.allocate(pageBytes);
    }

    /** Decommits region pages {@code [from, to)}, one call per region they span. */
    private void decommitPages(int from, int to) {
        while (from < to) {
            int r = regionOf(from);
            int end = Math.min(to, r + 1 < regionCount ? regionFirst[r + 1] : regionPages);
            NativeMemory.decommit(
                    regions[r], (long) (from - regionFirst[r]) * pageBytes, (long) (end - from) * pageBytes);
            for (int i = from; i < end; i++) {
                pages[i] = null;
            }
            from = end;
        }
    }

    /** Region spares a store of {@code pages} pages keeps: one, up to an eighth of its pages, at most 8. */
    static int maxSpares(int pages) {
        return Math.max(1, Math.min(MAX_SPARES, pages / 8));
    }

    static final int MAX_SPARES = 8;

    private int regionOf(int index) {
        int r = regionCount - 1;
        while (regionFirst[r] > index) {
            r--;
        }
        return r;
    }

    /** Reserves the next region; where that fails, stops asking (later pages are blocks). */
    private void reserveRegion() {
        long bytes = regionCount == 0
                ? FIRST_REGION_BYTES
                : Math.min(MAX_REGION_BYTES, regions[regionCount - 1].byteSize() * 2);
        int pagesIn = (int) Math.max(1, bytes / pageBytes);
        MemorySegment region = NativeMemory.reserve(pagesIn * pageBytes);
        if (region == null) {
            regionsWanted = false;
            return;
        }
        if (regionCount == regions.length) {
            regions = Arrays.copyOf(regions, Math.max(4, regionCount * 2));
            regionFirst = Arrays.copyOf(regionFirst, regions.length);
        }
        regions[regionCount] = region;
        regionFirst[regionCount++] = regionPages;
        regionPages += pagesIn;
    }

    /** The storage type of the rows. */
    public KvDType dtype() {
        return type;
    }

    /**
     * Tokens per prefill tile the kernel offers for this store's rows and a GQA group of {@code
     * group} ({@link AttentionKernel#prefillTileTokens}); 1: none.
     */
    public int prefillTileTokens(int group) {
        return kernel.prefillTileTokens(type, headDim, group);
    }

    /**
     * The largest slot {@code p <= to} at which an {@link #attend} over {@code [from, to)} starts a
     * block: attending {@code [from, p)} and then {@code [p, to)} runs the same blocks, so a tile can
     * share the first part and finish each token's own part alone, with the bits of one pass.
     */
    public int blockBoundary(int from, int to) {
        if (from < 0 || to < from) {
            throw new IllegalArgumentException("range [" + from + ", " + to + ") is not valid");
        }
        int firstPageEnd = (from / pageTokens + 1) * pageTokens;
        if (to <= firstPageEnd) {
            return from + (to - from) / GroupAttention.BLOCK * GroupAttention.BLOCK;
        }
        return to / GroupAttention.BLOCK * GroupAttention.BLOCK;
    }

    /** Throws unless {@code pageTokens} is a positive multiple of {@link GroupAttention#BLOCK} up to 65536. */
    public static void checkPageTokens(int pageTokens) {
        if (pageTokens < GroupAttention.BLOCK || pageTokens > 1 << 16 || pageTokens % GroupAttention.BLOCK != 0) {
            throw new IllegalArgumentException("pageTokens must be a multiple of " + GroupAttention.BLOCK + " in ["
                    + GroupAttention.BLOCK + ", 65536], was " + pageTokens);
        }
    }

    private static long pageBytes(KvDType type, int headDim, int pageTokens) {
        long raw = 2L * headDim * type.bytes() * pageTokens;
        return (raw + NativeMemory.ALIGNMENT - 1) & -NativeMemory.ALIGNMENT;
    }

    /**
     * Bytes a store of this type holds for {@code tokens} tokens in whole pages (no spare page), as
     * {@link #bytesHeld()} reports them after appends alone.
     */
    public static long bytesFor(KvDType type, int headDim, int pageTokens, long tokens) {
        checkPageTokens(pageTokens);
        return (tokens + pageTokens - 1) / pageTokens * pageBytes(type, headDim, pageTokens);
    }

    /** Bytes of one page block. */
    public long pageBytes() {
        return pageBytes;
    }

    public int pageTokens() {
        return pageTokens;
    }

    @Override
    public float maxMagnitude() {
        return type.maxFinite();
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public long bytesHeld() {
        return (pageCount + spares + (spare != null ? 1 : 0)) * pageBytes;
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
                pages[pageCount] = newPage(pageCount);
                pageCount++;
            }
            MemorySegment p = pages[page];
            appended = true;
            int src = t * rowStride;
            conversion.encodeStrided(keys, keysOffset + src, p, (long) row * type.bytes(), keyDimStride, type, headDim);
            ValueChunks.encode(conversion, values, valuesOffset + src, p, this.valuesOffset, type, headDim, row);
            count++;
        }
    }

    /**
     * A list or bitmap selection through {@link #attendGatheredScored} (values only); a range, which
     * {@link #attend} scans page by page, through {@code attend} itself, so the bits are {@code
     * attend}'s either way.
     */
    @Override
    public void attendScored(GroupAttention state, SlotSelection selection, float[] logits, int offset, int stride) {
        ensureOpen();
        if (selection.isRange() || selection.limit() > count || state.headDim() != headDim) {
            attend(state, selection);
            return;
        }
        if (gather == null) {
            gather = gatherBuffer(type, headDim);
        }
        if (scoredLogits.length < state.group() * GroupAttention.BLOCK) {
            scoredLogits = new float[state.group() * GroupAttention.BLOCK];
        }
        attendGatheredScored(
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

    /** Page by page with the kernel's {@link AttentionKernel#scores}, summed as {@link #attend} sums. */
    @Override
    public void scoreKeys(GroupAttention state, int slots, float[] out, int outStride) {
        ensureOpen();
        KeyScoring.check(state, slots, count, headDim, out, outStride);
        for (int p = 0, r0 = 0; r0 < slots; p++, r0 += pageTokens) {
            kernel.scores(state, pages[p], 0, pageTokens, type, Math.min(pageTokens, slots - r0), out, r0, outStride);
        }
    }

    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        ensureOpen();
        if (selection.limit() > count) {
            throw new IllegalArgumentException(
                    "selection reaches slot " + (selection.limit() - 1) + " but the store holds " + count);
        }
        if (selection.isRange()) {
            int from = selection.from();
            int to = selection.to();
            for (int slot = from; slot < to; ) {
                int row = slot % pageTokens;
                int rows = Math.min(pageTokens - row, to - slot);
                kernel.scan(state, pages[slot / pageTokens], 0, pageTokens, valuesOffset, type, row, rows, slot - from);
                slot += rows;
            }
            return;
        }
        if (gather == null) {
            gather = gatherBuffer(type, headDim);
        }
        attendGathered(state, selection, pages, type, headDim, pageTokens, kernel, gather);
    }

    /**
     * A scratch segment for {@link #attendGathered}: one block of {@link GroupAttention#BLOCK} keys
     * (dimension-major) and values of {@code headDim} elements in {@code type}.
     */
    public static MemorySegment gatherBuffer(KvDType type, int headDim) {
        long rowBytes = (long) headDim * type.bytes();
        return MemorySegment.ofArray(new long[(int) ((2 * rowBytes * GroupAttention.BLOCK + 7) / 8)]);
    }

    /**
     * Attends the slots of a bitmap or list {@code selection} over {@code pages} in this store's page
     * layout (per page: keys dimension-major, {@code pageTokens} per dimension, then value chunks),
     * copying each block of {@link GroupAttention#BLOCK} selected slots into {@code gather} (from
     * {@link #gatherBuffer}) and scanning it with {@code kernel}. Stores that keep this layout in other
     * memory (a tier) share it.
     */
    public static void attendGathered(
            GroupAttention state,
            SlotSelection selection,
            MemorySegment[] pages,
            KvDType type,
            int headDim,
            int pageTokens,
            AttentionKernel kernel,
            MemorySegment gather) {
        int block = GroupAttention.BLOCK;
        int e = type.bytes();
        long rowBytes = (long) headDim * e;
        long keyDimStride = (long) pageTokens * e;
        long valuesOffset = rowBytes * pageTokens;
        long gatherValues = rowBytes * block;
        long gatherDimStride = (long) block * e;
        selection.reset();
        int ordinal = 0;
        int n = 0;
        for (int slot = selection.next(); slot >= 0; slot = selection.next()) {
            MemorySegment src = pages[slot / pageTokens];
            long r = slot % pageTokens;
            for (int i = 0; i < headDim; i++) {
                MemorySegment.copy(src, i * keyDimStride + r * e, gather, i * gatherDimStride + (long) n * e, e);
            }
            ValueChunks.copy(src, valuesOffset, (int) r, gather, gatherValues, n, headDim, e);
            if (++n == block) {
                kernel.scan(state, gather, 0, block, gatherValues, type, 0, n, ordinal);
                ordinal += n;
                n = 0;
            }
        }
        if (n > 0) {
            kernel.scan(state, gather, 0, block, gatherValues, type, 0, n, ordinal);
        }
    }

    /**
     * {@link #attendGathered} with the logits given ({@link KeyScoring#attendScored}: slot {@code s} of
     * head {@code h} at {@code logits[offset + h·stride + s]}): the same blocks of 16 selected rows,
     * each pushed as logits ({@link GroupAttention#pushLogits}) and its values added by the kernel's
     * {@link AttentionKernel#accumulateValues}, so only values are gathered. {@code blockLogits}
     * holds {@code group × 16} floats of scratch.
     */
    public static void attendGatheredScored(
            GroupAttention state,
            SlotSelection selection,
            MemorySegment[] pages,
            KvDType type,
            int headDim,
            int pageTokens,
            AttentionKernel kernel,
            MemorySegment gather,
            float[] blockLogits,
            float[] logits,
            int offset,
            int stride) {
        int block = GroupAttention.BLOCK;
        int g = state.group();
        KeyScoring.checkScoredLogits(selection, g, logits, offset, stride);
        int e = type.bytes();
        long rowBytes = (long) headDim * e;
        long valuesOffset = rowBytes * pageTokens;
        long gatherValues = rowBytes * block;
        selection.reset();
        int ordinal = 0;
        int n = 0;
        for (int slot = selection.next(); slot >= 0; slot = selection.next()) {
            MemorySegment src = pages[slot / pageTokens];
            long r = slot % pageTokens;
            ValueChunks.copy(src, valuesOffset, (int) r, gather, gatherValues, n, headDim, e);
            for (int h = 0; h < g; h++) {
                blockLogits[h * block + n] = logits[offset + h * stride + slot];
            }
            if (++n == block) {
                state.pushLogits(blockLogits, n, ordinal);
                kernel.accumulateValues(state, gather, gatherValues, 0, type, n);
                ordinal += n;
                n = 0;
            }
        }
        if (n > 0) {
            state.pushLogits(blockLogits, n, ordinal);
            kernel.accumulateValues(state, gather, gatherValues, 0, type, n);
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

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
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
        int removed = count - newCount;
        count = newCount;
        if (spares > 0 && appended && !sparesTaken) {
            // region spares that a whole cycle of appends left unused: the store no longer grows back
            // to them (back-to-back compactions, one per victim of a batch, keep them)
            decommitPages(pageCount, pageCount + spares);
            spares = 0;
        }
        sparesTaken = false;
        appended = false;
        if (spare != null && !spareTaken) {
            // Unused for a whole step: the store no longer cycles at a page boundary. (Only blocks
            // become this spare; region pages become `spares`.)
            NativeMemory.free(spare);
            spare = null;
        }
        spareTaken = false;
        int needed = (newCount + pageTokens - 1) / pageTokens;
        // blocks first (pages past the regions, after a refused reservation), then region pages
        while (pageCount > Math.max(needed, regionPages)) {
            int index = --pageCount;
            MemorySegment page = pages[index];
            pages[index] = null;
            // the spare is the page the next append needs: index `needed`
            if (spare == null && removed < pageTokens && index == needed) {
                spare = page;
            } else {
                NativeMemory.free(page);
            }
        }
        if (pageCount > needed) {
            // Region pages: the lowest freed ones (up to maxSpares, with the spares above them) stay
            // committed for the appends of the next cycle; returning a page costs a system call, and
            // its next use a page fault for every system page of it.
            int top = pageCount + spares;
            int keep = Math.min(top - needed, maxSpares(needed));
            decommitPages(needed + keep, top);
            spares = keep;
            pageCount = needed;
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
        if (spare != null) {
            NativeMemory.free(spare);
            spare = null;
        }
        // blocks past the regions one by one, then the regions' committed pages in one call each
        int regionTop = Math.min(pageCount + spares, regionPages);
        for (int i = regionTop; i < pageCount; i++) {
            NativeMemory.free(pages[i]);
            pages[i] = null;
        }
        decommitPages(0, regionTop);
        pageCount = 0;
        spares = 0;
        for (int r = 0; r < regionCount; r++) {
            NativeMemory.release(regions[r]);
            regions[r] = null;
        }
        regionCount = 0;
        regionPages = 0;
        count = 0;
    }
}
