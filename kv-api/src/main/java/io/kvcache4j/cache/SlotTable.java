package io.kvcache4j.cache;

import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.store.HeadStore;
import java.util.Arrays;

/**
 * The cache's bookkeeping of one (layer, KV head): positions and the policies' metadata columns on
 * the heap, the protection of tokens whose attention has not run yet, and the translation of
 * evictions into {@link HeadStore#compact} calls at the store's granularity. Scratch arrays grow
 * (amortised doubling) only when the head holds more slots than ever before.
 *
 * <p>Not thread-safe; the owning cache admits one thread at a time.
 */
final class SlotTable implements HeadSlots {
    /** How many of the head's newest slots still wait for their attention. */
    @FunctionalInterface
    interface Pending {
        int pendingTokens();
    }

    private final HeadStore store;
    private final int granularity;
    private final Pending pending;
    private int[] positions = new int[16];
    private float[][] floatColumns = new float[0][];
    private long[][] longColumns = new long[0][];
    private int[] sources = new int[16];
    private int count;

    SlotTable(HeadStore store, Pending pending) {
        this.store = store;
        this.granularity = store.granularity();
        if (granularity < 1) {
            throw new IllegalArgumentException("store granularity must be >= 1, was " + granularity);
        }
        this.pending = pending;
    }

    HeadStore store() {
        return store;
    }

    /** Records {@code tokens} slots just appended to the store, at positions {@code first, first+1, …}. */
    void appended(int first, int tokens) {
        int newCount = count + tokens;
        if (store.count() != newCount) {
            throw new IllegalStateException(
                    "store holds " + store.count() + " slots after appending " + tokens + " to " + count);
        }
        if (newCount > positions.length) {
            int cap = Math.max(newCount, positions.length * 2);
            positions = Arrays.copyOf(positions, cap);
            for (int i = 0; i < floatColumns.length; i++) {
                floatColumns[i] = Arrays.copyOf(floatColumns[i], cap);
            }
            for (int i = 0; i < longColumns.length; i++) {
                longColumns[i] = Arrays.copyOf(longColumns[i], cap);
            }
        }
        for (int t = 0; t < tokens; t++) {
            positions[count + t] = first + t;
        }
        for (float[] c : floatColumns) {
            Arrays.fill(c, count, newCount, 0f);
        }
        for (long[] c : longColumns) {
            Arrays.fill(c, count, newCount, 0L);
        }
        count = newCount;
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public int granularity() {
        return granularity;
    }

    @Override
    public int[] positions() {
        return positions;
    }

    @Override
    public int position(int slot) {
        checkSlot(slot);
        return positions[slot];
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        checkSlot(slot);
        store.readKey(slot, dst, offset);
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        checkSlot(slot);
        store.readValue(slot, dst, offset);
    }

    @Override
    public int addFloatColumn() {
        floatColumns = Arrays.copyOf(floatColumns, floatColumns.length + 1);
        floatColumns[floatColumns.length - 1] = new float[positions.length];
        return floatColumns.length - 1;
    }

    @Override
    public int addLongColumn() {
        longColumns = Arrays.copyOf(longColumns, longColumns.length + 1);
        longColumns[longColumns.length - 1] = new long[positions.length];
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

    /** Bytes of the positions and metadata columns (their capacity). */
    long metadataBytes() {
        return (long) positions.length * (4L + 4L * floatColumns.length + 8L * longColumns.length)
                + 4L * sources.length;
    }

    @Override
    public long bytesHeld() {
        return store.bytesHeld();
    }

    @Override
    public void evict(int slot) {
        if (granularity > 1) {
            throw new IllegalStateException("the store keeps groups of " + granularity
                    + " tokens: evict whole groups with evictAll (slot " + slot + ")");
        }
        checkEvictable(slot);
        if (pending.pendingTokens() <= 1) {
            int last = count - 1;
            if (slot == last) {
                apply(slot, 0, last);
            } else {
                sources[0] = last;
                apply(slot, 1, last);
            }
        } else {
            evictRange(slot, 1);
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
        if (granularity > 1) {
            checkWholeGroups(sortedSlots, n);
        }
        ensureSources(count);
        int from = sortedSlots[0];
        int moved = 0;
        int next = 0;
        for (int read = from; read < count; read++) {
            if (next < n && sortedSlots[next] == read) {
                next++;
            } else {
                sources[moved++] = read;
            }
        }
        apply(from, moved, count - n);
    }

    private void evictRange(int slot, int n) {
        ensureSources(count);
        int moved = 0;
        for (int read = slot + n; read < count; read++) {
            sources[moved++] = read;
        }
        apply(slot, moved, count - n);
    }

    /** Compacts store and columns: slot {@code from + j} takes {@code sources[j]}, then truncates. */
    private void apply(int from, int moved, int newCount) {
        store.compact(from, sources, moved, newCount);
        for (int j = 0; j < moved; j++) {
            int src = sources[j];
            int dst = from + j;
            if (src == dst) {
                continue;
            }
            positions[dst] = positions[src];
            for (float[] c : floatColumns) {
                c[dst] = c[src];
            }
            for (long[] c : longColumns) {
                c[dst] = c[src];
            }
        }
        count = newCount;
        if (store.count() != newCount) {
            throw new IllegalStateException("store holds " + store.count() + " slots after compaction to " + newCount);
        }
    }

    private void checkWholeGroups(int[] slots, int n) {
        int g = granularity;
        if (n % g != 0) {
            throw new IllegalArgumentException(
                    "the store keeps groups of " + g + " tokens; " + n + " slots are not whole groups");
        }
        for (int i = 0; i < n; i += g) {
            int first = slots[i];
            if (first % g != 0 || slots[i + g - 1] != first + g - 1 || first + g > count) {
                throw new IllegalArgumentException("the store keeps groups of " + g + " tokens; slots " + first + ".."
                        + slots[i + g - 1] + " are not the complete group [" + (first / g * g) + ", "
                        + (first / g * g + g) + ")");
            }
        }
    }

    private void ensureSources(int n) {
        if (sources.length < n) {
            sources = new int[Math.max(n, sources.length * 2)];
        }
    }

    private void checkEvictable(int slot) {
        checkSlot(slot);
        int protectedFrom = count - pending.pendingTokens();
        if (slot >= protectedFrom) {
            throw new IllegalStateException("slot " + slot + " holds a token whose attention has not run yet"
                    + " (evictable slots: [0, " + protectedFrom + "))");
        }
    }

    private void checkSlot(int slot) {
        if (slot < 0 || slot >= count) {
            throw new IndexOutOfBoundsException("slot " + slot + " out of range [0, " + count + ")");
        }
    }
}
