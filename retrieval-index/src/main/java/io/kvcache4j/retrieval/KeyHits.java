package io.kvcache4j.retrieval;

import io.kvcache4j.store.SlotSelection;
import java.util.Arrays;
import org.roaringbitmap.RoaringBitmap;

/**
 * The result of one {@link KeyIndex#search}: the slots found, best first (ties by lower slot), their
 * scores {@code q·k} as the index computed them, and the search's cost as the number of distance
 * computations (key reads, plus routing vectors where an index has them; see each index).
 *
 * <p>Immutable; the arrays are owned by the result.
 */
public final class KeyHits {
    private final int[] slots;
    private final float[] scores;
    private final long scanned;
    private final int indexSize;

    KeyHits(int[] slots, float[] scores, long scanned, int indexSize) {
        this.slots = slots;
        this.scores = scores;
        this.scanned = scanned;
        this.indexSize = indexSize;
    }

    /** Number of slots found ({@code min(k, size)} for an exact index). */
    public int count() {
        return slots.length;
    }

    /** The slot of rank {@code i} (0 = best). */
    public int slot(int i) {
        return slots[i];
    }

    /** The score {@code q·k} of rank {@code i}. */
    public float score(int i) {
        return scores[i];
    }

    /** The slots, best first (a copy). */
    public int[] slotsByRank() {
        return slots.clone();
    }

    /** The slots in increasing order (a new array), as {@link SlotSelection#list} takes them. */
    public int[] sortedSlots() {
        int[] s = slots.clone();
        Arrays.sort(s);
        return s;
    }

    /** The slots as a bitmap, for unions over the query heads of a GQA group and set arithmetic. */
    public RoaringBitmap toBitmap() {
        return RoaringBitmap.bitmapOf(slots);
    }

    /** Configures {@code selection} to read the slots found, in increasing order; returns it. */
    public SlotSelection select(SlotSelection selection) {
        return selection.list(sortedSlots(), slots.length);
    }

    /** Distance computations the search made. */
    public long scanned() {
        return scanned;
    }

    /** Keys in the index when it was searched. */
    public int indexSize() {
        return indexSize;
    }

    /** {@link #scanned()} over {@link #indexSize()} (0 for an empty index). */
    public double scannedFraction() {
        return indexSize == 0 ? 0 : (double) scanned / indexSize;
    }

    @Override
    public String toString() {
        return "KeyHits[count=" + slots.length + ", scanned=" + scanned + " of " + indexSize + "]";
    }
}
