package io.kvcache4j.retrieval;

/**
 * A binary heap of (score, id) pairs with its worst pair on top when {@code worstOnTop} (a bounded
 * top-k pool) or its best pair on top otherwise (a beam-search frontier). "Better" is the higher
 * score, ties by the lower id. Reusable: {@link #clear()} keeps the arrays.
 */
final class ScoreHeap {
    private final boolean worstOnTop;
    private float[] scores;
    private int[] ids;
    private int size;

    ScoreHeap(int capacity, boolean worstOnTop) {
        this.worstOnTop = worstOnTop;
        scores = new float[Math.max(1, capacity)];
        ids = new int[Math.max(1, capacity)];
    }

    /** Whether (s1, i1) ranks better than (s2, i2). */
    static boolean better(float s1, int i1, float s2, int i2) {
        return s1 > s2 || (s1 == s2 && i1 < i2);
    }

    /** Whether a belongs above b in this heap. */
    private boolean above(int a, int b) {
        boolean aBetter = better(scores[a], ids[a], scores[b], ids[b]);
        return worstOnTop ? !aBetter : aBetter;
    }

    int size() {
        return size;
    }

    void clear() {
        size = 0;
    }

    float topScore() {
        return scores[0];
    }

    int topId() {
        return ids[0];
    }

    void push(float score, int id) {
        if (size == scores.length) {
            scores = java.util.Arrays.copyOf(scores, size * 2);
            ids = java.util.Arrays.copyOf(ids, size * 2);
        }
        int i = size++;
        scores[i] = score;
        ids[i] = id;
        while (i > 0) {
            int p = (i - 1) >>> 1;
            if (!above(i, p)) {
                break;
            }
            swap(i, p);
            i = p;
        }
    }

    /** Removes the top pair. */
    void pop() {
        size--;
        scores[0] = scores[size];
        ids[0] = ids[size];
        int i = 0;
        while (true) {
            int l = 2 * i + 1;
            if (l >= size) {
                break;
            }
            int c = l + 1 < size && above(l + 1, l) ? l + 1 : l;
            if (!above(c, i)) {
                break;
            }
            swap(i, c);
            i = c;
        }
    }

    /**
     * For a worst-on-top heap bounded at {@code limit}: adds the pair if the heap is not full or the
     * pair beats the worst one (which it then replaces). Returns whether it was added.
     */
    boolean offer(float score, int id, int limit) {
        if (size < limit) {
            push(score, id);
            return true;
        }
        if (better(score, id, scores[0], ids[0])) {
            pop();
            push(score, id);
            return true;
        }
        return false;
    }

    /**
     * Empties a worst-on-top heap into a result, best first with ties by lower slot; ids are mapped
     * to slots through {@code slotOf} when it is non-null.
     */
    KeyHits drain(int[] slotOf, long scanned, int indexSize) {
        int n = size;
        int[] outIds = new int[n];
        float[] outScores = new float[n];
        for (int i = n - 1; i >= 0; i--) {
            outIds[i] = slotOf == null ? ids[0] : slotOf[ids[0]];
            outScores[i] = scores[0];
            pop();
        }
        if (slotOf != null) {
            // node order need not follow slot order: re-break ties by slot
            for (int i = 1; i < n; i++) {
                float s = outScores[i];
                int id = outIds[i];
                int j = i - 1;
                while (j >= 0 && better(s, id, outScores[j], outIds[j])) {
                    outScores[j + 1] = outScores[j];
                    outIds[j + 1] = outIds[j];
                    j--;
                }
                outScores[j + 1] = s;
                outIds[j + 1] = id;
            }
        }
        return new KeyHits(outIds, outScores, scanned, indexSize);
    }

    private void swap(int a, int b) {
        float s = scores[a];
        scores[a] = scores[b];
        scores[b] = s;
        int t = ids[a];
        ids[a] = ids[b];
        ids[b] = t;
    }

    /** Bytes of the two arrays' payloads. */
    long bytes() {
        return 8L * scores.length;
    }
}
