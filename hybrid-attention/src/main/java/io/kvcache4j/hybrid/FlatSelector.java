package io.kvcache4j.hybrid;

/**
 * The exact {@link TokenSelector}: scores every row, {@code max_h q_h·k} over the group, through
 * {@link KeyRows#scores} (the attention kernel's own scoring over whole pages), and keeps the {@code k} best (ties
 * broken towards lower rows) — MInference's {@code FlatIndex} configuration of RetrievalAttention
 * (arXiv 2409.10516). Every call reads every candidate key, so {@link #keysScanned()} grows by {@code
 * rows} per call. Allocates only when a region grows past what it has seen. Not thread-safe.
 */
public final class FlatSelector implements TokenSelector {
    private float[] logits = new float[0];
    private float[] heapScore = new float[0];
    private int[] heapRow = new int[0];
    private long scanned;

    /** A factory of flat selectors. */
    public static TokenSelector.Factory factory() {
        return spec -> new FlatSelector();
    }

    @Override
    public int select(KeyRows keys, int rows, float[] queries, int group, int k, int[] out) {
        if (k < 0 || rows < 0 || rows > keys.rows()) {
            throw new IllegalArgumentException(
                    "k " + k + " must be >= 0 and rows " + rows + " in [0, " + keys.rows() + "]");
        }
        if (k >= rows) {
            for (int i = 0; i < rows; i++) {
                out[i] = i;
            }
            return rows;
        }
        if (k == 0) {
            return 0;
        }
        if (logits.length < (long) group * rows) {
            logits = new float[Math.max(group * rows, logits.length * 2)];
        }
        if (heapScore.length < k) {
            heapScore = new float[Math.max(k, heapScore.length * 2)];
            heapRow = new int[heapScore.length];
        }
        keys.scores(queries, group, rows, logits, rows);
        scanned += rows;
        // One pass: the k best rows so far in a min-heap whose root is the worst kept (lowest score;
        // among equal scores the higher row). Rows arrive in ascending order, so a row whose score
        // only equals the root's loses the tie and is skipped.
        int size = 0;
        for (int r = 0; r < rows; r++) {
            float best = logits[r];
            for (int h = 1; h < group; h++) {
                best = Math.max(best, logits[h * rows + r]);
            }
            if (size < k) {
                siftUp(size++, best, r);
            } else if (best > heapScore[0]) {
                siftDown(size, best, r);
            }
        }
        System.arraycopy(heapRow, 0, out, 0, size);
        sortAscending(out, size);
        return size;
    }

    /** In-place heapsort of {@code a[0..n)} (Arrays.sort may allocate run buffers on a decode step). */
    static void sortAscending(int[] a, int n) {
        for (int i = n / 2 - 1; i >= 0; i--) {
            siftMax(a, i, n);
        }
        for (int end = n - 1; end > 0; end--) {
            int t = a[0];
            a[0] = a[end];
            a[end] = t;
            siftMax(a, 0, end);
        }
    }

    private static void siftMax(int[] a, int at, int n) {
        int v = a[at];
        while (true) {
            int child = 2 * at + 1;
            if (child >= n) {
                break;
            }
            if (child + 1 < n && a[child + 1] > a[child]) {
                child++;
            }
            if (a[child] <= v) {
                break;
            }
            a[at] = a[child];
            at = child;
        }
        a[at] = v;
    }

    /** Whether (a, ra) is worse than (b, rb): a lower score, or the same score at a higher row. */
    private static boolean worse(float a, int ra, float b, int rb) {
        return a < b || (a == b && ra > rb);
    }

    private void siftUp(int at, float score, int row) {
        while (at > 0) {
            int parent = (at - 1) >>> 1;
            if (!worse(score, row, heapScore[parent], heapRow[parent])) {
                break;
            }
            heapScore[at] = heapScore[parent];
            heapRow[at] = heapRow[parent];
            at = parent;
        }
        heapScore[at] = score;
        heapRow[at] = row;
    }

    /** Replaces the root by (score, row) and restores the heap of {@code size} entries. */
    private void siftDown(int size, float score, int row) {
        int at = 0;
        while (true) {
            int child = 2 * at + 1;
            if (child >= size) {
                break;
            }
            if (child + 1 < size && worse(heapScore[child + 1], heapRow[child + 1], heapScore[child], heapRow[child])) {
                child++;
            }
            if (!worse(heapScore[child], heapRow[child], score, row)) {
                break;
            }
            heapScore[at] = heapScore[child];
            heapRow[at] = heapRow[child];
            at = child;
        }
        heapScore[at] = score;
        heapRow[at] = row;
    }

    /** The {@code k}-th largest of {@code a[0..n)} (quickselect; reorders {@code a}). */
    static float kthLargest(float[] a, int n, int k) {
        int target = n - k; // index in ascending order
        int lo = 0;
        int hi = n - 1;
        while (lo < hi) {
            float pivot = a[(lo + hi) >>> 1];
            int i = lo;
            int j = hi;
            while (i <= j) {
                while (a[i] < pivot) {
                    i++;
                }
                while (a[j] > pivot) {
                    j--;
                }
                if (i <= j) {
                    float t = a[i];
                    a[i] = a[j];
                    a[j] = t;
                    i++;
                    j--;
                }
            }
            if (target <= j) {
                hi = j;
            } else if (target >= i) {
                lo = i;
            } else {
                return a[target];
            }
        }
        return a[target];
    }

    @Override
    public long keysScanned() {
        return scanned;
    }

    @Override
    public String name() {
        return "flat";
    }
}
