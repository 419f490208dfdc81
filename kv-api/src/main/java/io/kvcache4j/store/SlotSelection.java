package io.kvcache4j.store;

/**
 * Which slots of a {@link HeadStore} one attention pass reads: a contiguous range (a prefix, all of
 * them, or one chunk of a split pass), a bitmap, or a strictly increasing list. Selections are mutable and reusable (a decode step configures one and
 * allocates nothing); the arrays handed to {@link #bitmap} and {@link #list} are referenced, not
 * copied, and must not change while a pass reads them.
 *
 * <p>A store iterates a selection in increasing slot order with {@link #reset()} and {@link
 * #next()}. The <em>ordinal</em> of a selected slot is its rank in that order: attention records
 * logits and reports per-key mass by ordinal, which equals the slot for a prefix.
 *
 * <p>Not thread-safe: one pass at a time reads a selection.
 */
public final class SlotSelection {
    /** The kinds of selection. */
    public enum Kind {
        /** Slots {@code [from, to)}. */
        RANGE,
        /** The set bits of a {@code long[]} bitmap (bit {@code s & 63} of word {@code s >>> 6} is slot {@code s}). */
        BITMAP,
        /** A strictly increasing list of slots. */
        LIST
    }

    private Kind kind = Kind.RANGE;
    private int from;
    private int to;
    private long[] words = new long[0];
    private int bitmapSlots;
    private int[] slots = new int[0];
    private int size;
    // iteration state
    private int cursor;
    private long word;
    private int wordIndex;

    /** An empty prefix selection. */
    public SlotSelection() {}

    /** Selects slots {@code [0, n)}. */
    public SlotSelection prefix(int n) {
        if (n < 0) {
            throw new IllegalArgumentException("prefix length must be >= 0, was " + n);
        }
        return range(0, n);
    }

    /** Selects slots {@code [from, to)}. */
    public SlotSelection range(int from, int to) {
        if (from < 0 || to < from) {
            throw new IllegalArgumentException("range [" + from + ", " + to + ") must have 0 <= from <= to");
        }
        kind = Kind.RANGE;
        this.from = from;
        this.to = to;
        size = to - from;
        return reset();
    }

    /**
     * Selects the set bits of {@code bitmap} below {@code slotLimit} (bits at or above it must be
     * clear). Counts the selected slots once (a popcount per word).
     */
    public SlotSelection bitmap(long[] bitmap, int slotLimit) {
        if (slotLimit < 0 || (slotLimit + 63L) / 64 > bitmap.length) {
            throw new IllegalArgumentException("slotLimit " + slotLimit + " out of range [0, " + 64L * bitmap.length
                    + "] for a bitmap of " + bitmap.length + " words");
        }
        int full = slotLimit >>> 6;
        int n = 0;
        for (int i = 0; i < full; i++) {
            n += Long.bitCount(bitmap[i]);
        }
        if ((slotLimit & 63) != 0) {
            long tail = bitmap[full];
            if ((tail & (-1L << (slotLimit & 63))) != 0) {
                throw new IllegalArgumentException("bitmap has bits set at or above slotLimit " + slotLimit);
            }
            n += Long.bitCount(tail);
        }
        kind = Kind.BITMAP;
        words = bitmap;
        bitmapSlots = slotLimit;
        size = n;
        return reset();
    }

    /** Selects {@code sortedSlots[0..n)}, which must be strictly increasing and non-negative. */
    public SlotSelection list(int[] sortedSlots, int n) {
        if (n < 0 || n > sortedSlots.length) {
            throw new IllegalArgumentException("n " + n + " out of range [0, " + sortedSlots.length + "]");
        }
        for (int i = 0; i < n; i++) {
            if (sortedSlots[i] < 0 || (i > 0 && sortedSlots[i] <= sortedSlots[i - 1])) {
                throw new IllegalArgumentException("slots must be strictly increasing and >= 0: "
                        + (i > 0 ? sortedSlots[i - 1] + " then " : "") + sortedSlots[i] + " at index " + i);
            }
        }
        kind = Kind.LIST;
        slots = sortedSlots;
        size = n;
        return reset();
    }

    public Kind kind() {
        return kind;
    }

    /** Number of selected slots. */
    public int size() {
        return size;
    }

    /**
     * One past the highest selected slot (0 if none): a store holding fewer slots cannot serve this
     * selection.
     */
    public int limit() {
        return switch (kind) {
            case RANGE -> size == 0 ? 0 : to;
            case LIST -> size == 0 ? 0 : slots[size - 1] + 1;
            case BITMAP -> {
                for (int w = (bitmapSlots + 63) / 64 - 1; w >= 0; w--) {
                    if (words[w] != 0) {
                        yield w * 64 + 64 - Long.numberOfLeadingZeros(words[w]);
                    }
                }
                yield 0;
            }
        };
    }

    /** Whether this is a contiguous range ({@link #from()}, {@link #to()}). */
    public boolean isRange() {
        return kind == Kind.RANGE;
    }

    /** First slot of a range selection. */
    public int from() {
        return from;
    }

    /** One past the last slot of a range selection. */
    public int to() {
        return to;
    }

    /** Restarts the iteration of {@link #next()}. */
    public SlotSelection reset() {
        cursor = 0;
        wordIndex = 0;
        word = kind == Kind.BITMAP && bitmapSlots > 0 ? words[0] : 0;
        return this;
    }

    /** The next selected slot in increasing order, or {@code -1} when the selection is exhausted. */
    public int next() {
        switch (kind) {
            case RANGE -> {
                return from + cursor < to ? from + cursor++ : -1;
            }
            case LIST -> {
                return cursor < size ? slots[cursor++] : -1;
            }
            default -> {
                int wordsUsed = (bitmapSlots + 63) >>> 6;
                while (word == 0) {
                    if (++wordIndex >= wordsUsed) {
                        return -1;
                    }
                    word = words[wordIndex];
                }
                int bit = Long.numberOfTrailingZeros(word);
                word &= word - 1;
                return wordIndex * 64 + bit;
            }
        }
    }
}
