package io.kvcache4j.eviction;

/**
 * A preallocated ring of the last {@code capacity} query rows ({@code queryHeads × headDim} floats
 * each) of every layer, with their positions: what one-shot policies score the prompt with at
 * {@link io.kvcache4j.api.KvCache#endPrefill()}. Holds {@code layers × capacity × rowFloats} floats,
 * allocated once; saving a row is one array copy. Not thread-safe.
 */
final class QueryWindow {
    private final int capacity;
    private final int rowFloats;
    private final float[][] rows;
    private final int[][] positions;
    private final long[] saved;

    QueryWindow(int layers, int capacity, int rowFloats) {
        if ((long) capacity * rowFloats > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("query window of " + capacity + " rows x " + rowFloats
                    + " floats exceeds one Java array; use a smaller window");
        }
        this.capacity = capacity;
        this.rowFloats = rowFloats;
        this.rows = new float[layers][capacity * rowFloats];
        this.positions = new int[layers][capacity];
        this.saved = new long[layers];
    }

    /** Saves the query row of {@code layer} at {@code position}, from {@code queries[offset..]}. */
    void save(int layer, int position, float[] queries, int offset) {
        int slot = (int) (saved[layer] % capacity);
        System.arraycopy(queries, offset, rows[layer], slot * rowFloats, rowFloats);
        positions[layer][slot] = position;
        saved[layer]++;
    }

    /** Rows available for {@code layer}: {@code min(saved, capacity)}. */
    int available(int layer) {
        return (int) Math.min(saved[layer], capacity);
    }

    /** The backing array of {@code layer}'s rows; see {@link #offset}. */
    float[] rows(int layer) {
        return rows[layer];
    }

    /**
     * Offset in {@link #rows} of the {@code i}-th of the last {@code n} saved rows of {@code layer}
     * ({@code 0} is the oldest of them, {@code n-1} the newest).
     */
    int offset(int layer, int n, int i) {
        return ringSlot(layer, n, i) * rowFloats;
    }

    /** Position of the {@code i}-th of the last {@code n} saved rows; see {@link #offset}. */
    int position(int layer, int n, int i) {
        return positions[layer][ringSlot(layer, n, i)];
    }

    private int ringSlot(int layer, int n, int i) {
        if (n > available(layer) || i < 0 || i >= n) {
            throw new IndexOutOfBoundsException(
                    "row " + i + " of the last " + n + " (available " + available(layer) + ")");
        }
        return (int) ((saved[layer] - n + i) % capacity);
    }

    /** Heap bytes of the ring. */
    long bytes() {
        return (long) rows.length * capacity * (4L * rowFloats + 4);
    }
}
