package io.kvcache4j.retrieval;

import com.github.jelmerk.hnswlib.core.DistanceFunction;
import com.github.jelmerk.hnswlib.core.Item;
import com.github.jelmerk.hnswlib.core.SearchResult;
import com.github.jelmerk.hnswlib.core.hnsw.HnswIndex;
import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import java.io.Serial;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.roaringbitmap.RoaringBitmap;

/**
 * HNSW over the keys (Malkov and Yashunin, arXiv 1603.09320) by jelmerk's hnswlib-core
 * (https://github.com/jelmerk/hnswlib) with inner-product distance {@code 1 − q·k} computed by
 * {@link VectorUtilSupport#dot}. This is the "vanilla ANN on keys" that RetrievalAttention (arXiv
 * 2409.10516) shows to need a large scan on attention queries, whose distribution differs from the
 * keys'.
 *
 * <p>Options: {@code m} (neighbours per node, default 16, level 0 keeps {@code 2m}), {@code
 * efConstruction} (default 200), {@code ef} (search pool, default 64; a search uses {@code max(ef,
 * k)}), {@code threads} (insert threads per batch, default 1).
 *
 * <p>Insert cost: every key is one hnswlib insert, a beam search of {@code efConstruction} plus
 * neighbour pruning, of the order of 10³ distance computations (about 1–3·10³ inserts per second at d
 * = 128 on one core). One insert per decode token per (layer, KV head) is therefore too slow for
 * decode: {@link #add} takes a batch (the prefill, then flushes of an exact recent window), and with
 * {@code threads > 1} inserts its keys in parallel.
 *
 * <p>Not deterministic: hnswlib draws node levels from {@link
 * java.util.concurrent.ThreadLocalRandom}, so two builds of the same keys differ slightly.
 *
 * <p>{@link KeyHits#scanned()} counts distance calls of the search (upper layers included; a node
 * may be scored on two layers). {@link #bytes()} is an <em>estimate</em> from hnswlib's object
 * layout with compressed references (16-byte array headers, 8-byte alignment): per key its item and
 * {@code float[d]}, its node with one {@code IntArrayList} of capacity {@code 2m} on level 0 and
 * {@code m} on each level above (the expected {@code 1/(m−1)} extra levels), an entry of
 * the id map, and the node-array reference; the graph's real lists may have grown past those
 * capacities.
 */
public final class HnswKeyIndex implements KeyIndex {
    /** The provider of {@code hnsw}. */
    public static final class Provider implements KeyIndexProvider {
        /** For {@link java.util.ServiceLoader}. */
        public Provider() {}

        @Override
        public String name() {
            return "hnsw";
        }

        @Override
        public String description() {
            return "HNSW over the keys (jelmerk hnswlib-core), inner-product distance, batch inserts";
        }

        @Override
        public Set<String> options() {
            return Set.of("m", "efConstruction", "ef", "threads");
        }

        @Override
        public KeyIndex create(int dimension, KeyIndexOptions options) {
            options.checkKnown(name(), options());
            return new HnswKeyIndex(
                    dimension,
                    options.intValue("m", 16, 2, 256),
                    options.intValue("efConstruction", 200, 1, 1 << 16),
                    options.intValue("ef", 64, 1, 1 << 20),
                    options.intValue("threads", 1, 1, 1024));
        }
    }

    private static final VectorUtilSupport VEC =
            VectorizationProvider.getInstance().vectorUtil();

    /** A key of the graph: its slot and a copy of its vector. */
    record Key(Integer id, float[] vector) implements Item<Integer, float[]> {
        @Serial
        private static final long serialVersionUID = 1L;

        @Override
        public int dimensions() {
            return vector.length;
        }
    }

    /** {@code 1 − u·v}, counting its calls (racy under parallel inserts, exact for one search). */
    static final class CountingInnerProduct implements DistanceFunction<float[], Float> {
        @Serial
        private static final long serialVersionUID = 1L;

        long calls;

        @Override
        public Float distance(float[] u, float[] v) {
            calls++;
            return 1f - VEC.dot(u, 0, v, 0, u.length);
        }
    }

    private final int d;
    private final int m;
    private final int ef;
    private final int threads;
    private final CountingInnerProduct distance = new CountingInnerProduct();
    private final RoaringBitmap present = new RoaringBitmap();
    private HnswIndex<Integer, float[], Key, Float> graph;
    private boolean closed;

    /**
     * An empty index.
     *
     * @param m neighbours per node on levels above 0 ({@code 2m} on level 0)
     * @param efConstruction insert beam width
     * @param ef default search pool
     * @param threads insert threads per batch
     */
    public HnswKeyIndex(int dimension, int m, int efConstruction, int ef, int threads) {
        this.d = Checks.dimension(dimension);
        this.m = m;
        this.ef = ef;
        this.threads = threads;
        this.graph = HnswIndex.newBuilder(d, distance, 1024)
                .withM(m)
                .withEfConstruction(efConstruction)
                .withEf(ef)
                .build();
    }

    @Override
    public String name() {
        return "hnsw";
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
        int need = graph.size() + count;
        if (need > graph.getMaxItemCount()) {
            graph.resize(Math.max(need, graph.getMaxItemCount() * 2));
        }
        List<Key> batch = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            float[] v = new float[d];
            System.arraycopy(keys, i * d, v, 0, d);
            batch.add(new Key(slots[i], v));
            present.add(slots[i]);
        }
        try {
            graph.addAll(batch, threads, (done, max) -> {}, Integer.MAX_VALUE);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while indexing a batch", e);
        }
    }

    @Override
    public KeyHits search(float[] query, int k) {
        return search(query, k, ef);
    }

    @Override
    public KeyHits search(float[] query, int k, int ef) {
        Checks.open(closed);
        Checks.k(k);
        Checks.ef(ef);
        Checks.query(query, d);
        int n = graph.size();
        if (n == 0) {
            return new KeyHits(new int[0], new float[0], 0, 0);
        }
        graph.setEf(Math.max(ef, k));
        distance.calls = 0;
        List<SearchResult<Key, Float>> found = graph.findNearest(query, k);
        long scanned = distance.calls;
        ScoreHeap heap = new ScoreHeap(found.size(), true);
        for (SearchResult<Key, Float> r : found) {
            heap.push(1f - r.distance(), r.item().id());
        }
        return heap.drain(null, scanned, n);
    }

    @Override
    public int size() {
        Checks.open(closed);
        return graph.size();
    }

    @Override
    public long bytes() {
        Checks.open(closed);
        long n = graph.size();
        long perKey = 0;
        perKey += 24 + align(16 + 4L * d); // Key record (header, two refs) + float[d]
        perKey += 16 + 16; // the boxed id + its share of the id map (keys and values at load 0.5)
        perKey += 32; // Node: header, int id, two refs, boolean
        double upper = 1.0 / (m - 1); // expected levels above 0 with hnswlib's level factor 1/ln m
        perKey += align(16 + 4L * 2) + 24 + align(16 + 4L * 2 * m); // connections[] + level-0 list
        long upperBytes = (long) (upper * (4 + 24 + align(16 + 4L * m)));
        return n * (perKey + upperBytes) + 4L * graph.getMaxItemCount() + present.serializedSizeInBytes();
    }

    private static long align(long bytes) {
        return (bytes + 7) & ~7L;
    }

    @Override
    public void close() {
        closed = true;
        graph = null;
        present.clear();
    }
}
