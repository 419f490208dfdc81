package io.kvcache4j.retrieval;

import org.roaringbitmap.RoaringBitmap;

/** Argument checks shared by the indexes; messages name the value and its allowed range. */
final class Checks {
    /** Largest key dimension an index accepts. */
    static final int MAX_DIMENSION = 65536;

    private Checks() {}

    static int dimension(int d) {
        if (d < 1 || d > MAX_DIMENSION) {
            throw new IllegalArgumentException("dimension " + d + " out of range [1, " + MAX_DIMENSION + "]");
        }
        return d;
    }

    static void k(int k) {
        if (k < 1) {
            throw new IllegalArgumentException("k " + k + " out of range [1, " + Integer.MAX_VALUE + "]");
        }
    }

    static void ef(int ef) {
        if (ef < 1) {
            throw new IllegalArgumentException("ef " + ef + " out of range [1, " + Integer.MAX_VALUE + "]");
        }
    }

    static void query(float[] q, int d) {
        if (q.length != d) {
            throw new IllegalArgumentException(
                    "query length " + q.length + " out of range [" + d + ", " + d + "] (the index dimension)");
        }
        finite(q, 0, d, "query");
    }

    /** Checks {@code v[off .. off+n)} for NaN and infinities. */
    static void finite(float[] v, int off, int n, String what) {
        for (int i = 0; i < n; i++) {
            float x = v[off + i];
            if (!Float.isFinite(x)) {
                throw new IllegalArgumentException(
                        what + " component " + i + " is " + x + "; components must be finite");
            }
        }
    }

    /** Checks a batch of {@code count} rows of {@code d}: lengths and finiteness. */
    static void rows(float[] rows, int count, int d, String what) {
        if (count < 0) {
            throw new IllegalArgumentException("count " + count + " out of range [0, " + Integer.MAX_VALUE + "]");
        }
        if ((long) count * d > rows.length) {
            throw new IllegalArgumentException(what + " array length " + rows.length + " out of range ["
                    + (long) count * d + ", ...] for " + count + " rows of " + d);
        }
        for (int i = 0; i < count; i++) {
            finite(rows, i * d, d, what + " row " + i);
        }
    }

    /** Checks a batch of slots: count, non-negative, unique in the batch and not in {@code present}. */
    static void slots(int[] slots, int count, RoaringBitmap present) {
        if (count < 0 || count > slots.length) {
            throw new IllegalArgumentException("count " + count + " out of range [0, " + slots.length + "]");
        }
        RoaringBitmap batch = new RoaringBitmap();
        for (int i = 0; i < count; i++) {
            int s = slots[i];
            if (s < 0) {
                throw new IllegalArgumentException(
                        "slot " + s + " at index " + i + " out of range [0, " + Integer.MAX_VALUE + "]");
            }
            if (present.contains(s) || !batch.checkedAdd(s)) {
                throw new IllegalArgumentException("slot " + s + " at index " + i + " is already indexed");
            }
        }
    }

    static void open(boolean closed) {
        if (closed) {
            throw new IllegalStateException("key index is closed");
        }
    }
}
