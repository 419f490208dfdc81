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
    private float[] scores = new float[0];
    private float[] work = new float[0];
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
        if (scores.length < rows) {
            scores = new float[Math.max(rows, scores.length * 2)];
            work = new float[scores.length];
        }
        if (logits.length < (long) group * rows) {
            logits = new float[Math.max(group * rows, logits.length * 2)];
        }
        keys.scores(queries, group, rows, logits, rows);
        System.arraycopy(logits, 0, scores, 0, rows);
        for (int h = 1; h < group; h++) {
            int base = h * rows;
            for (int r = 0; r < rows; r++) {
                scores[r] = Math.max(scores[r], logits[base + r]);
            }
        }
        scanned += rows;
        System.arraycopy(scores, 0, work, 0, rows);
        float threshold = kthLargest(work, rows, k);
        int above = 0;
        for (int r = 0; r < rows; r++) {
            if (scores[r] > threshold) {
                above++;
            }
        }
        int ties = k - above;
        int n = 0;
        for (int r = 0; r < rows; r++) {
            float s = scores[r];
            if (s > threshold || (s == threshold && ties-- > 0)) {
                out[n++] = r;
            }
        }
        return n;
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
