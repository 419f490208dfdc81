package io.kvcache4j.store;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Ragged, paged, off-heap store of the token slots of one (layer, KV head).
 *
 * <p>Memory: fixed-size pages of {@code pageTokens} slots (a multiple of {@link
 * GroupAttention#BLOCK}), each one off-heap block laid out as {@code [keys: headDim ×
 * pageTokens][values: pageTokens × headDim][positions: pageTokens × int32]} in the storage type.
 * Keys are dimension-major within the page (see {@link AttentionKernel}) so the attention kernel
 * scores a block of keys with vertical vector operations only. Appending allocates a page only when the last one is full, so the store grows
 * without copying; removing slots compacts and frees every page past the last occupied one at once.
 * {@link #bytesHeld()} is the exact sum of the blocks held.
 *
 * <p>Ownership: the store owns its pages and frees them in {@link #close()}. Metadata columns of
 * eviction policies are on-heap arrays that move with the slots.
 *
 * <p>Not thread-safe.
 */
public final class PagedHeadStore implements HeadStore {
    private static final ValueLayout.OfInt POS = ValueLayout.JAVA_INT_UNALIGNED;

    private final KvDType type;
    private final int headDim;
    private final int pageTokens;
    private final long rowBytes;
    private final long keyDimStride;
    private final long valuesOffset;
    private final long positionsOffset;
    private final long pageBytes;
    private final AttentionKernel kernel;
    private final PendingCounter pending;

    private MemorySegment[] pages = new MemorySegment[4];
    private int pageCount;
    private int count;
    private float[][] floatColumns = new float[0][];
    private long[][] longColumns = new long[0][];
    private int columnCapacity;
    private boolean closed;

    /**
     * Creates an empty store.
     *
     * @param pending how many newest slots are still waiting for attention; those are protected
     */
    public PagedHeadStore(KvDType type, int headDim, int pageTokens, AttentionKernel kernel, PendingCounter pending) {
        if (headDim <= 0) {
            throw new IllegalArgumentException("headDim must be >= 1, was " + headDim);
        }
        checkPageTokens(pageTokens);
        this.type = type;
        this.headDim = headDim;
        this.pageTokens = pageTokens;
        this.kernel = kernel;
        this.pending = pending;
        this.rowBytes = (long) headDim * type.bytes();
        this.keyDimStride = (long) pageTokens * type.bytes();
        this.valuesOffset = rowBytes * pageTokens;
        this.positionsOffset = 2 * rowBytes * pageTokens;
        long raw = positionsOffset + 4L * pageTokens;
        this.pageBytes = (raw + NativeMemory.ALIGNMENT - 1) & -NativeMemory.ALIGNMENT;
    }

    /** Throws unless {@code pageTokens} is a positive multiple of {@link GroupAttention#BLOCK} up to 65536. */
    public static void checkPageTokens(int pageTokens) {
        if (pageTokens < GroupAttention.BLOCK || pageTokens > 1 << 16 || pageTokens % GroupAttention.BLOCK != 0) {
            throw new IllegalArgumentException("pageTokens must be a multiple of " + GroupAttention.BLOCK + " in ["
                    + GroupAttention.BLOCK + ", 65536], was " + pageTokens);
        }
    }

    /**
     * Bytes a store of this type holds for {@code tokens} tokens: whole pages, as {@link #bytesHeld()}
     * reports them.
     */
    public static long bytesFor(KvDType type, int headDim, int pageTokens, long tokens) {
        checkPageTokens(pageTokens);
        long raw = 2L * headDim * type.bytes() * pageTokens + 4L * pageTokens;
        long page = (raw + NativeMemory.ALIGNMENT - 1) & -NativeMemory.ALIGNMENT;
        return (tokens + pageTokens - 1) / pageTokens * page;
    }

    /** Bytes of one page block. */
    public long pageBytes() {
        return pageBytes;
    }

    public int pageTokens() {
        return pageTokens;
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public long bytesHeld() {
        return pageCount * pageBytes;
    }

    /**
     * Appends one token: {@code headDim} key floats at {@code k[kOff..]}, value floats at {@code
     * v[vOff..]}, rounded to the storage type. The caller validated the values.
     */
    @Override
    public void append(float[] k, int kOff, float[] v, int vOff, int position) {
        ensureOpen();
        int page = count / pageTokens;
        int row = count % pageTokens;
        if (page == pageCount) {
            if (pageCount == pages.length) {
                pages = Arrays.copyOf(pages, pages.length * 2);
            }
            pages[pageCount++] = NativeMemory.allocate(pageBytes);
        }
        MemorySegment p = pages[page];
        kernel.encodeStrided(k, kOff, p, (long) row * type.bytes(), keyDimStride, type, headDim);
        kernel.encode(v, vOff, p, valuesOffset + row * rowBytes, type, headDim);
        p.set(POS, positionsOffset + 4L * row, position);
        if (count == columnCapacity && (floatColumns.length > 0 || longColumns.length > 0)) {
            growColumns(count + 1);
        }
        for (float[] c : floatColumns) {
            c[count] = 0f;
        }
        for (long[] c : longColumns) {
            c[count] = 0L;
        }
        count++;
    }

    /**
     * Runs the attention pass of {@code state} over slots {@code [0, visible)}, page by page. The
     * caller has called {@link GroupAttention#begin} and calls {@link GroupAttention#finish}.
     */
    @Override
    public void attend(GroupAttention state, int visible) {
        ensureOpen();
        if (visible < 0 || visible > count) {
            throw new IllegalArgumentException("visible " + visible + " out of range [0, " + count + "]");
        }
        for (int page = 0, slot = 0; slot < visible; page++, slot += pageTokens) {
            int rows = Math.min(pageTokens, visible - slot);
            MemorySegment p = pages[page];
            kernel.scan(state, p, 0, pageTokens, valuesOffset, type, rows, slot);
        }
    }

    @Override
    public int position(int slot) {
        checkSlot(slot);
        return pages[slot / pageTokens].get(POS, positionsOffset + 4L * (slot % pageTokens));
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        checkSlot(slot);
        kernel.decodeStrided(
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
        kernel.decode(
                pages[slot / pageTokens], valuesOffset + (slot % pageTokens) * rowBytes, type, dst, offset, headDim);
    }

    @Override
    public int addFloatColumn() {
        ensureOpen();
        floatColumns = Arrays.copyOf(floatColumns, floatColumns.length + 1);
        floatColumns[floatColumns.length - 1] = new float[Math.max(columnCapacity, count)];
        columnCapacity = Math.max(columnCapacity, count);
        return floatColumns.length - 1;
    }

    @Override
    public int addLongColumn() {
        ensureOpen();
        longColumns = Arrays.copyOf(longColumns, longColumns.length + 1);
        longColumns[longColumns.length - 1] = new long[Math.max(columnCapacity, count)];
        columnCapacity = Math.max(columnCapacity, count);
        return longColumns.length - 1;
    }

    @Override
    public float[] floatColumn(int column) {
        return floatColumns[column];
    }

    @Override
    public long[] longColumn(int column) {
        return longColumns[column];
    }

    /** Bytes of the on-heap metadata columns (their capacity). */
    @Override
    public long metadataBytes() {
        return (long) columnCapacity * (4L * floatColumns.length + 8L * longColumns.length);
    }

    @Override
    public void evict(int slot) {
        checkEvictable(slot);
        if (pending.pendingTokens() <= 1) {
            int last = count - 1;
            if (slot != last) {
                copySlot(last, slot);
            }
            truncate(last);
        } else {
            for (int s = slot + 1; s < count; s++) {
                copySlot(s, s - 1);
            }
            truncate(count - 1);
        }
    }

    @Override
    public void evictAll(int[] sortedSlots, int n) {
        if (n < 0 || n > sortedSlots.length) {
            throw new IllegalArgumentException("n " + n + " out of range [0, " + sortedSlots.length + "]");
        }
        if (n == 0) {
            return;
        }
        for (int i = 0; i < n; i++) {
            checkEvictable(sortedSlots[i]);
            if (i > 0 && sortedSlots[i] <= sortedSlots[i - 1]) {
                throw new IllegalArgumentException("slots must be strictly increasing: " + sortedSlots[i - 1] + " then "
                        + sortedSlots[i] + " at index " + i);
            }
        }
        int write = sortedSlots[0];
        int next = 0;
        for (int read = sortedSlots[0]; read < count; read++) {
            if (next < n && sortedSlots[next] == read) {
                next++;
                continue;
            }
            copySlot(read, write++);
        }
        truncate(write);
    }

    private void checkEvictable(int slot) {
        checkSlot(slot);
        int protectedFrom = count - pending.pendingTokens();
        if (slot >= protectedFrom) {
            throw new IllegalStateException("slot " + slot + " holds a token whose attention has not run yet"
                    + " (evictable slots: [0, " + protectedFrom + "))");
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
        MemorySegment.copy(src, valuesOffset + fr * rowBytes, dst, valuesOffset + tr * rowBytes, rowBytes);
        dst.set(POS, positionsOffset + 4 * tr, src.get(POS, positionsOffset + 4 * fr));
        for (float[] c : floatColumns) {
            c[to] = c[from];
        }
        for (long[] c : longColumns) {
            c[to] = c[from];
        }
    }

    private void truncate(int newCount) {
        count = newCount;
        int needed = (newCount + pageTokens - 1) / pageTokens;
        while (pageCount > needed) {
            NativeMemory.free(pages[--pageCount]);
            pages[pageCount] = null;
        }
    }

    private void growColumns(int minCapacity) {
        int cap = Math.max(minCapacity, Math.max(16, columnCapacity * 2));
        for (int i = 0; i < floatColumns.length; i++) {
            floatColumns[i] = Arrays.copyOf(floatColumns[i], cap);
        }
        for (int i = 0; i < longColumns.length; i++) {
            longColumns[i] = Arrays.copyOf(longColumns[i], cap);
        }
        columnCapacity = cap;
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
        truncate(0);
        closed = true;
    }
}
