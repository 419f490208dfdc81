package io.kvcache4j.eviction;

/**
 * Allocation-free selection and sorting on primitive arrays, for choosing eviction victims.
 *
 * <p>Victims are ranked by a {@code long} key whose upper 32 bits hold the score (see {@link
 * #sortable(float)}) and whose lower 32 bits hold the slot, so keys are distinct and ties break by
 * slot. Stateless and thread-safe.
 */
final class Selection {
    private Selection() {}

    /**
     * Maps a float to an int whose signed order is the float's order ({@code -0.0 < 0.0}; NaN is not
     * allowed).
     */
    static int sortable(float f) {
        int bits = Float.floatToRawIntBits(f);
        return bits ^ ((bits >> 31) & 0x7FFFFFFF);
    }

    /** A ranking key: {@code score} in the upper half, {@code slot} (>= 0) in the lower half. */
    static long key(int score, int slot) {
        return ((long) score << 32) | (slot & 0xFFFFFFFFL);
    }

    /** The slot of a key made by {@link #key}. */
    static int slot(long key) {
        return (int) key;
    }

    /**
     * Reorders {@code a[0..n)} so that its {@code k} smallest elements occupy {@code a[0..k)} (in no
     * particular order). Introselect: quickselect with a median-of-three pivot, falling back to a
     * heapsort of the remaining range after {@code 2·log2(n)} rounds, so the worst case is O(n log n).
     */
    static void selectSmallest(long[] a, int n, int k) {
        if (k <= 0 || k >= n) {
            return;
        }
        int lo = 0;
        int hi = n - 1;
        int budget = 2 * (32 - Integer.numberOfLeadingZeros(n));
        while (hi > lo) {
            if (budget-- == 0) {
                heapSort(a, lo, hi + 1);
                return;
            }
            int mid = (lo + hi) >>> 1;
            // median of three into a[mid]
            if (a[mid] < a[lo]) swap(a, mid, lo);
            if (a[hi] < a[lo]) swap(a, hi, lo);
            if (a[hi] < a[mid]) swap(a, hi, mid);
            long pivot = a[mid];
            int i = lo;
            int j = hi;
            while (i <= j) {
                while (a[i] < pivot) i++;
                while (a[j] > pivot) j--;
                if (i <= j) {
                    swap(a, i, j);
                    i++;
                    j--;
                }
            }
            // now a[lo..j] <= pivot <= a[i..hi], and elements between j and i equal pivot
            if (k - 1 <= j) {
                hi = j;
            } else if (k - 1 >= i) {
                lo = i;
            } else {
                return;
            }
        }
    }

    /** Sorts {@code a[0..n)} ascending, in place (heapsort). */
    static void sort(int[] a, int n) {
        for (int i = n / 2 - 1; i >= 0; i--) {
            siftDown(a, i, n);
        }
        for (int end = n - 1; end > 0; end--) {
            int t = a[0];
            a[0] = a[end];
            a[end] = t;
            siftDown(a, 0, end);
        }
    }

    /** Index of the smallest of {@code a[0..n)} ({@code -1} if {@code n == 0}). */
    static int argMin(long[] a, int n) {
        int best = -1;
        long min = Long.MAX_VALUE;
        for (int i = 0; i < n; i++) {
            if (a[i] < min || best < 0) {
                min = a[i];
                best = i;
            }
        }
        return best;
    }

    private static void siftDown(int[] a, int i, int n) {
        int v = a[i];
        while (true) {
            int c = 2 * i + 1;
            if (c >= n) break;
            if (c + 1 < n && a[c + 1] > a[c]) c++;
            if (a[c] <= v) break;
            a[i] = a[c];
            i = c;
        }
        a[i] = v;
    }

    private static void heapSort(long[] a, int from, int to) {
        int n = to - from;
        for (int i = n / 2 - 1; i >= 0; i--) {
            siftDown(a, from, i, n);
        }
        for (int end = n - 1; end > 0; end--) {
            swap(a, from, from + end);
            siftDown(a, from, 0, end);
        }
    }

    private static void siftDown(long[] a, int base, int i, int n) {
        long v = a[base + i];
        while (true) {
            int c = 2 * i + 1;
            if (c >= n) break;
            if (c + 1 < n && a[base + c + 1] > a[base + c]) c++;
            if (a[base + c] <= v) break;
            a[base + i] = a[base + c];
            i = c;
        }
        a[base + i] = v;
    }

    private static void swap(long[] a, int i, int j) {
        long t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
