package io.kvcache4j.retrieval;

import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import java.util.Arrays;
import java.util.Set;
import org.roaringbitmap.RoaringBitmap;

/**
 * Exact top-k by inner product: a vectorized scan of every key (the baseline every approximate index
 * is measured against, as MInference's {@code retr_attn} ships a flat index,
 * https://github.com/microsoft/MInference).
 *
 * <p>The result is the exact top {@code k} in float64 order, ties by lower slot: the scan scores
 * every key in float with {@link VectorUtilSupport#dot} and keeps a heap of {@code k}; every key
 * whose float score lies within twice the float rounding bound {@code (d+2)·2⁻²³·‖q‖·max‖k‖} of the
 * {@code k}-th best is rescored in double, and the top {@code k} is taken from those. {@link
 * KeyHits#scanned()} is the number of keys ({@link #size()}); the few rescored keys are not counted
 * again.
 *
 * <p>{@link #bytes()} is exact: the payload of its arrays (keys {@code 4·d} bytes per capacity row,
 * slots and norms 4 bytes each, the score scratch 4 bytes per capacity row) plus the slot bitmap's
 * serialized size; object headers are not counted.
 */
public final class FlatKeyIndex implements KeyIndex {
    /** The provider of {@code flat}. */
    public static final class Provider implements KeyIndexProvider {
        /** For {@link java.util.ServiceLoader}. */
        public Provider() {}

        @Override
        public String name() {
            return "flat";
        }

        @Override
        public String description() {
            return "exact top-k by a vectorized scan of every key, float64 order";
        }

        @Override
        public Set<String> options() {
            return Set.of();
        }

        @Override
        public KeyIndex create(int dimension, KeyIndexOptions options) {
            options.checkKnown(name(), options());
            return new FlatKeyIndex(dimension);
        }
    }

    private static final VectorUtilSupport VEC =
            VectorizationProvider.getInstance().vectorUtil();

    private final int d;
    private final RoaringBitmap present = new RoaringBitmap();
    private float[] keys = new float[0];
    private int[] slots = new int[0];
    private float[] scratch = new float[0];
    private double maxNorm;
    private int size;
    private boolean closed;

    /** An empty index over keys of {@code dimension} components. */
    public FlatKeyIndex(int dimension) {
        this.d = Checks.dimension(dimension);
    }

    @Override
    public String name() {
        return "flat";
    }

    @Override
    public int dimension() {
        return d;
    }

    @Override
    public void add(int[] slots, float[] keys, int count) {
        Checks.open(closed);
        Checks.slots(slots, count, present);
        Checks.rows(keys, count, d, "keys");
        ensure(size + count);
        System.arraycopy(keys, 0, this.keys, size * d, count * d);
        for (int i = 0; i < count; i++) {
            this.slots[size + i] = slots[i];
            present.add(slots[i]);
            maxNorm = Math.max(maxNorm, Math.sqrt(VEC.dot(keys, i * d, keys, i * d, d)));
        }
        size += count;
    }

    private void ensure(int n) {
        if (n > slots.length) {
            int cap = Math.max(n, slots.length + (slots.length >> 1) + 16);
            keys = Arrays.copyOf(keys, cap * d);
            slots = Arrays.copyOf(slots, cap);
            scratch = new float[cap];
        }
    }

    @Override
    public KeyHits search(float[] query, int k) {
        return search(query, k, k);
    }

    @Override
    public KeyHits search(float[] query, int k, int ef) {
        Checks.open(closed);
        Checks.k(k);
        Checks.ef(ef);
        Checks.query(query, d);
        int kk = Math.min(k, size);
        if (kk == 0) {
            return new KeyHits(new int[0], new float[0], 0, 0);
        }
        ScoreHeap heap = new ScoreHeap(kk, true);
        for (int i = 0; i < size; i++) {
            float s = VEC.dot(query, 0, keys, i * d, d);
            scratch[i] = s;
            heap.offer(s, i, kk);
        }
        double bound = 1.01 * (d + 2) * 0x1p-23 * Math.sqrt(dotDouble(query, query, 0)) * maxNorm;
        double threshold =
                kk < size ? heap.topScore() - 2 * bound - Math.ulp(heap.topScore()) : Double.NEGATIVE_INFINITY;
        int[] cand = new int[Math.max(16, 2 * kk)];
        int c = 0;
        for (int i = 0; i < size; i++) {
            if (scratch[i] >= threshold) {
                if (c == cand.length) {
                    cand = Arrays.copyOf(cand, 2 * c);
                }
                cand[c++] = i;
            }
        }
        double[] exact = new double[c];
        Integer[] order = new Integer[c];
        for (int j = 0; j < c; j++) {
            exact[j] = dotDouble(query, keys, cand[j] * d);
            order[j] = j;
        }
        final int[] cc = cand;
        Arrays.sort(order, (a, b) -> {
            int byScore = Double.compare(exact[b], exact[a]);
            return byScore != 0 ? byScore : Integer.compare(slots[cc[a]], slots[cc[b]]);
        });
        int[] outSlots = new int[kk];
        float[] outScores = new float[kk];
        for (int j = 0; j < kk; j++) {
            outSlots[j] = slots[cand[order[j]]];
            outScores[j] = (float) exact[order[j]];
        }
        return new KeyHits(outSlots, outScores, size, size);
    }

    private double dotDouble(float[] q, float[] rows, int off) {
        double s = 0;
        for (int i = 0; i < d; i++) {
            s += (double) q[i] * rows[off + i];
        }
        return s;
    }

    @Override
    public int size() {
        Checks.open(closed);
        return size;
    }

    @Override
    public long bytes() {
        Checks.open(closed);
        return 4L * keys.length + 4L * slots.length + 4L * scratch.length + present.serializedSizeInBytes();
    }

    @Override
    public void close() {
        closed = true;
        keys = new float[0];
        slots = new int[0];
        scratch = new float[0];
        present.clear();
    }
}
