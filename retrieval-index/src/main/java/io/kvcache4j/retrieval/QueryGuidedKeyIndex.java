package io.kvcache4j.retrieval;

import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import java.util.Arrays;
import java.util.Set;
import java.util.SplittableRandom;
import org.roaringbitmap.RoaringBitmap;

/**
 * An attention-aware key graph ({@code roar}): the query-guided graph of RetrievalAttention (Liu et
 * al. 2024, arXiv 2409.10516), built with RoarGraph's projection (Chen et al., VLDB'24,
 * https://github.com/matchyc/RoarGraph), plus query-side routing to entry keys. Written from the
 * papers' descriptions; no code is taken from either repository.
 *
 * <p>Attention queries and keys come from different distributions, so a graph whose edges follow
 * key–key similarity (HNSW) leads a query's beam search through keys that no query ranks highly.
 * This index learns its edges from sample queries ({@link #observeQueries}, e.g. prefill queries; at
 * most {@code trainQueries} are kept, by reservoir sampling). For each batch of keys:
 *
 * <ol>
 *   <li><b>Projection.</b> Each kept query's exact top {@code queryTopK} keys of the batch are found
 *       by a scan. The best of them is the pivot; the others are ordered by inner product with the
 *       pivot and pruned by occlusion (drop {@code c} when a kept {@code r} has {@code c·r > c·pivot},
 *       RoarGraph's rule with inner product), and each kept one is linked to the pivot in both
 *       directions. Each node's projected list is then pruned the same way to {@code m/2}.
 *   <li><b>Routing.</b> The kept queries are clustered by k-means into {@code routes} centroids; each
 *       centroid's exact top {@code entries} keys over the whole index become its entry keys.
 *   <li><b>Connectivity.</b> Every key of the batch, in order, beam-searches the graph with its own
 *       vector (pool {@code efConstruction}, entries routed as for a query), and its out-list is
 *       filled to {@code m} with the occlusion-pruned results; each new neighbour gets the reverse
 *       edge, its list re-pruned to {@code m} when full. This joins the batch to earlier batches and
 *       reaches keys no sample query ranked.
 * </ol>
 *
 * <p>A search scores the {@code routes} centroids (nearest by L2, i.e. largest {@code q·c −
 * ‖c‖²/2}), seeds a beam search with the entry keys of the best {@code probe} centroids, and returns
 * the top {@code k} of a pool of {@code max(ef, k)}. {@link KeyHits#scanned()} counts the key
 * distance computations <em>and</em> the {@code routes} centroid scores. Without sample queries the
 * batch's own keys (a sample of up to {@code trainQueries}) stand in for them and the graph becomes
 * a plain key–key graph.
 *
 * <p>Build cost per batch of {@code B} keys with {@code T} sample queries: {@code T·B} dot products
 * for the projection, {@code routes·N} for the entry keys, and {@code B} beam searches of pool {@code
 * efConstruction}. Deterministic: the same options (including {@code seed}), keys and queries give
 * the same graph and results.
 *
 * <p>{@link #bytes()} is exact: the payload of its arrays (keys {@code 4·d} per capacity row,
 * adjacency {@code 4·m} per capacity row, degrees, slots and visit marks 4 each, sample queries,
 * centroids, entries) plus the slot bitmap's serialized size; object headers are not counted.
 */
public final class QueryGuidedKeyIndex implements KeyIndex {
    /** The provider of {@code roar}. */
    public static final class Provider implements KeyIndexProvider {
        /** For {@link java.util.ServiceLoader}. */
        public Provider() {}

        @Override
        public String name() {
            return "roar";
        }

        @Override
        public String description() {
            return "attention-aware key graph: RoarGraph projection of sample queries' top keys, query-routed entries";
        }

        @Override
        public Set<String> options() {
            return Set.of(
                    "m", "queryTopK", "trainQueries", "efConstruction", "ef", "routes", "entries", "probe", "seed");
        }

        @Override
        public KeyIndex create(int dimension, KeyIndexOptions o) {
            o.checkKnown(name(), options());
            return new QueryGuidedKeyIndex(
                    dimension,
                    o.intValue("m", 32, 4, 1024),
                    o.intValue("queryTopK", 100, 2, 1 << 16),
                    o.intValue("trainQueries", 2048, 0, 1 << 22),
                    o.intValue("efConstruction", 64, 1, 1 << 16),
                    o.intValue("ef", 128, 1, 1 << 20),
                    o.intValue("routes", 64, 1, 1 << 16),
                    o.intValue("entries", 4, 1, 1 << 10),
                    o.intValue("probe", 2, 1, 1 << 16),
                    o.longValue("seed", 42));
        }
    }

    private static final VectorUtilSupport VEC =
            VectorizationProvider.getInstance().vectorUtil();
    private static final int KMEANS_ITERATIONS = 8;

    private final int d;
    private final int m;
    private final int queryTopK;
    private final int trainQueries;
    private final int efConstruction;
    private final int ef;
    private final int routes;
    private final int entriesPerRoute;
    private final int probe;
    private final SplittableRandom random;
    private final RoaringBitmap present = new RoaringBitmap();

    private float[] keys = new float[0];
    private int[] slots = new int[0];
    private int[] adj = new int[0];
    private int[] degree = new int[0];
    private int[] visited = new int[0];
    private int epoch;
    private int size;

    private float[] sample = new float[0];
    private int sampled;
    private long seen;

    private float[] centroids = new float[0];
    private float[] centroidHalfNorms = new float[0];
    private int centroidCount;
    private int[] entries = new int[0];

    private final ScoreHeap frontier = new ScoreHeap(256, false);
    private long lastScan;
    private boolean closed;

    /**
     * An empty index; see the class comment for the options.
     *
     * @param m out-degree cap per key
     * @param queryTopK top keys per sample query projected onto the key graph
     * @param trainQueries sample queries kept (reservoir)
     * @param efConstruction beam pool of the connectivity step
     * @param ef default search pool
     * @param routes query centroids for routing
     * @param entries entry keys per centroid
     * @param probe centroids whose entries seed a search
     * @param seed seed of the reservoir sample and k-means
     */
    public QueryGuidedKeyIndex(
            int dimension,
            int m,
            int queryTopK,
            int trainQueries,
            int efConstruction,
            int ef,
            int routes,
            int entries,
            int probe,
            long seed) {
        this.d = Checks.dimension(dimension);
        this.m = m;
        this.queryTopK = queryTopK;
        this.trainQueries = trainQueries;
        this.efConstruction = efConstruction;
        this.ef = ef;
        this.routes = routes;
        this.entriesPerRoute = entries;
        this.probe = probe;
        this.random = new SplittableRandom(seed);
    }

    @Override
    public String name() {
        return "roar";
    }

    @Override
    public int dimension() {
        return d;
    }

    @Override
    public void observeQueries(float[] queries, int count) {
        Checks.open(closed);
        Checks.rows(queries, count, d, "queries");
        if (trainQueries == 0) {
            return;
        }
        if (sample.length == 0) {
            sample = new float[Math.multiplyExact(trainQueries, d)];
        }
        for (int i = 0; i < count; i++) {
            seen++;
            int row;
            if (sampled < trainQueries) {
                row = sampled++;
            } else {
                long j = random.nextLong(seen);
                if (j >= trainQueries) {
                    continue;
                }
                row = (int) j;
            }
            System.arraycopy(queries, i * d, sample, row * d, d);
        }
    }

    /** Sample queries currently kept. */
    public int sampledQueries() {
        return sampled;
    }

    @Override
    public void add(int[] slots, float[] keys, int count) {
        Checks.open(closed);
        Checks.slots(slots, count, present);
        Checks.rows(keys, count, d, "keys");
        if (count == 0) {
            return;
        }
        ensure(size + count);
        int n0 = size;
        System.arraycopy(keys, 0, this.keys, n0 * d, count * d);
        for (int i = 0; i < count; i++) {
            this.slots[n0 + i] = slots[i];
            present.add(slots[i]);
        }
        size += count;
        float[] train;
        int t;
        if (sampled > 0) {
            train = sample;
            t = sampled;
        } else {
            t = Math.min(count, Math.max(1, trainQueries));
            train = new float[t * d];
            for (int i = 0; i < t; i++) {
                int node = n0 + (int) ((long) i * count / t);
                System.arraycopy(this.keys, node * d, train, i * d, d);
            }
        }
        project(train, t, n0, size);
        route(train, t);
        connect(n0, size);
    }

    private void ensure(int n) {
        if (n > slots.length) {
            int cap = Math.max(n, slots.length + (slots.length >> 1) + 16);
            keys = Arrays.copyOf(keys, cap * d);
            slots = Arrays.copyOf(slots, cap);
            adj = Arrays.copyOf(adj, cap * m);
            degree = Arrays.copyOf(degree, cap);
            visited = new int[cap];
            epoch = 0;
        }
    }

    private float dotKeys(int a, int b) {
        return VEC.dot(keys, a * d, keys, b * d, d);
    }

    /** Step 1: RoarGraph projection of each sample query's top keys among nodes [n0, n1). */
    private void project(float[] train, int t, int n0, int n1) {
        int b = n1 - n0;
        int[][] lists = new int[b][];
        int[] counts = new int[b];
        int top = Math.min(queryTopK, b);
        ScoreHeap heap = new ScoreHeap(top, true);
        int[] ranked = new int[top];
        float[] byPivot = new float[top];
        int[] kept = new int[m];
        for (int qi = 0; qi < t; qi++) {
            heap.clear();
            for (int x = n0; x < n1; x++) {
                heap.offer(VEC.dot(train, qi * d, keys, x * d, d), x, top);
            }
            int r = heap.size();
            for (int i = r - 1; i >= 0; i--) {
                ranked[i] = heap.topId();
                heap.pop();
            }
            int pivot = ranked[0];
            // order the other candidates by inner product with the pivot, best first
            for (int i = 1; i < r; i++) {
                byPivot[i] = dotKeys(pivot, ranked[i]);
            }
            sortDescending(ranked, byPivot, 1, r);
            int nk = occlusionPrune(pivot, ranked, byPivot, 1, r, kept, 0, m / 2);
            for (int i = 0; i < nk; i++) {
                append(lists, counts, pivot - n0, kept[i]);
                append(lists, counts, kept[i] - n0, pivot);
            }
        }
        int[] cand = new int[0];
        float[] scores = new float[0];
        int[] out = new int[m];
        for (int i = 0; i < b; i++) {
            int x = n0 + i;
            int c = counts[i];
            if (c == 0) {
                continue;
            }
            if (cand.length < c) {
                cand = new int[c];
                scores = new float[c];
            }
            int u = 0;
            int[] l = lists[i];
            Arrays.sort(l, 0, c);
            for (int j = 0; j < c; j++) {
                if (l[j] != x && (u == 0 || cand[u - 1] != l[j])) {
                    cand[u] = l[j];
                    scores[u] = dotKeys(x, l[j]);
                    u++;
                }
            }
            sortDescending(cand, scores, 0, u);
            int kept2 = occlusionPrune(x, cand, scores, 0, u, out, 0, m / 2);
            System.arraycopy(out, 0, adj, x * m, kept2);
            degree[x] = kept2;
        }
    }

    private static void append(int[][] lists, int[] counts, int i, int value) {
        int[] l = lists[i];
        if (l == null) {
            l = lists[i] = new int[4];
        } else if (counts[i] == l.length) {
            l = lists[i] = Arrays.copyOf(l, l.length * 2);
        }
        l[counts[i]++] = value;
    }

    /**
     * Occlusion pruning around node {@code p}: scans {@code cand[from..to)} (ordered best first by
     * {@code scoreToP}) and keeps {@code c} unless a kept {@code r} has {@code c·r > c·p}; {@code
     * out[0..have)} are already kept. Stops at {@code limit} kept in all; when fewer than half of
     * {@code limit} survive, fills with the best pruned ones. Returns the new count in {@code out}.
     */
    private int occlusionPrune(int p, int[] cand, float[] scoreToP, int from, int to, int[] out, int have, int limit) {
        int n = have;
        int firstPruned = -1;
        for (int i = from; i < to && n < limit; i++) {
            int c = cand[i];
            float cp = scoreToP[i];
            boolean keep = true;
            for (int j = 0; j < n; j++) {
                if (out[j] == c || dotKeys(c, out[j]) > cp) {
                    keep = false;
                    break;
                }
            }
            if (keep) {
                out[n++] = c;
            } else if (firstPruned < 0) {
                firstPruned = i;
            }
        }
        if (n < (limit + 1) / 2 && firstPruned >= 0) {
            for (int i = firstPruned; i < to && n < (limit + 1) / 2; i++) {
                if (!contains(out, n, cand[i]) && cand[i] != p) {
                    out[n++] = cand[i];
                }
            }
        }
        return n;
    }

    private static boolean contains(int[] a, int n, int v) {
        for (int i = 0; i < n; i++) {
            if (a[i] == v) {
                return true;
            }
        }
        return false;
    }

    /** Insertion-free sort of {@code ids[from..to)} by {@code scores} descending (ties by id). */
    private static void sortDescending(int[] ids, float[] scores, int from, int to) {
        int n = to - from;
        long[] packed = new long[n];
        for (int i = 0; i < n; i++) {
            // order key: descending score, ascending id
            int bits = Float.floatToIntBits(scores[from + i]);
            int sortable = bits >= 0 ? bits : bits ^ 0x7fffffff;
            packed[i] = ((long) ~sortable << 32) | (ids[from + i] & 0xffffffffL);
        }
        Arrays.sort(packed);
        for (int i = 0; i < n; i++) {
            int id = (int) packed[i];
            int sortable = ~(int) (packed[i] >>> 32);
            int bits = sortable >= 0 ? sortable : sortable ^ 0x7fffffff;
            ids[from + i] = id;
            scores[from + i] = Float.intBitsToFloat(bits);
        }
    }

    /** Step 2: k-means of the sample queries into routing centroids, each with its top keys. */
    private void route(float[] train, int t) {
        int c = Math.min(routes, t);
        centroids = new float[c * d];
        centroidHalfNorms = new float[c];
        centroidCount = c;
        SplittableRandom r = random.split();
        // distinct random rows as the initial centroids (partial Fisher-Yates)
        int[] rows = new int[t];
        for (int i = 0; i < t; i++) {
            rows[i] = i;
        }
        for (int i = 0; i < c; i++) {
            int j = i + r.nextInt(t - i);
            int tmp = rows[i];
            rows[i] = rows[j];
            rows[j] = tmp;
            System.arraycopy(train, rows[i] * d, centroids, i * d, d);
        }
        int[] assign = new int[t];
        double[] sums = new double[c * d];
        int[] members = new int[c];
        for (int it = 0; it < KMEANS_ITERATIONS; it++) {
            halfNorms();
            for (int q = 0; q < t; q++) {
                assign[q] = nearestCentroid(train, q * d);
            }
            Arrays.fill(sums, 0);
            Arrays.fill(members, 0);
            for (int q = 0; q < t; q++) {
                int a = assign[q];
                members[a]++;
                for (int j = 0; j < d; j++) {
                    sums[a * d + j] += train[q * d + j];
                }
            }
            for (int a = 0; a < c; a++) {
                if (members[a] > 0) {
                    for (int j = 0; j < d; j++) {
                        centroids[a * d + j] = (float) (sums[a * d + j] / members[a]);
                    }
                }
            }
        }
        halfNorms();
        entries = new int[c * entriesPerRoute];
        Arrays.fill(entries, -1);
        int e = Math.min(entriesPerRoute, size);
        ScoreHeap heap = new ScoreHeap(e, true);
        for (int a = 0; a < c; a++) {
            heap.clear();
            for (int x = 0; x < size; x++) {
                heap.offer(VEC.dot(centroids, a * d, keys, x * d, d), x, e);
            }
            for (int i = heap.size() - 1; i >= 0; i--) {
                entries[a * entriesPerRoute + i] = heap.topId();
                heap.pop();
            }
        }
    }

    private void halfNorms() {
        for (int a = 0; a < centroidCount; a++) {
            centroidHalfNorms[a] = 0.5f * VEC.dot(centroids, a * d, centroids, a * d, d);
        }
    }

    private int nearestCentroid(float[] v, int off) {
        int best = 0;
        float bestScore = Float.NEGATIVE_INFINITY;
        for (int a = 0; a < centroidCount; a++) {
            float s = VEC.dot(v, off, centroids, a * d, d) - centroidHalfNorms[a];
            if (s > bestScore) {
                bestScore = s;
                best = a;
            }
        }
        return best;
    }

    /** Step 3: joins each node of [n0, n1) to the graph by a beam search with its own vector. */
    private void connect(int n0, int n1) {
        ScoreHeap pool = new ScoreHeap(efConstruction, true);
        int[] cand = new int[efConstruction];
        float[] scores = new float[efConstruction];
        int[] out = new int[m];
        for (int x = n0; x < n1; x++) {
            pool.clear();
            beam(keys, x * d, efConstruction, pool);
            int c = 0;
            int deg = degree[x];
            while (pool.size() > 0) {
                int id = pool.topId();
                float s = pool.topScore();
                pool.pop();
                if (id != x && !contains(adj, x * m, x * m + deg, id)) {
                    cand[c] = id;
                    scores[c] = s;
                    c++;
                }
            }
            sortDescending(cand, scores, 0, c);
            System.arraycopy(adj, x * m, out, 0, deg);
            int n = occlusionPrune(x, cand, scores, 0, c, out, deg, m);
            System.arraycopy(out, deg, adj, x * m + deg, n - deg);
            degree[x] = n;
            for (int i = deg; i < n; i++) {
                link(out[i], x);
            }
        }
    }

    private static boolean contains(int[] a, int from, int to, int v) {
        for (int i = from; i < to; i++) {
            if (a[i] == v) {
                return true;
            }
        }
        return false;
    }

    /** Adds the edge y→x, re-pruning y's list when full. */
    private void link(int y, int x) {
        int deg = degree[y];
        if (contains(adj, y * m, y * m + deg, x)) {
            return;
        }
        if (deg < m) {
            adj[y * m + deg] = x;
            degree[y] = deg + 1;
            return;
        }
        int[] cand = new int[deg + 1];
        float[] scores = new float[deg + 1];
        for (int i = 0; i < deg; i++) {
            cand[i] = adj[y * m + i];
            scores[i] = dotKeys(y, cand[i]);
        }
        cand[deg] = x;
        scores[deg] = dotKeys(y, x);
        sortDescending(cand, scores, 0, deg + 1);
        int[] out = new int[m];
        int n = occlusionPrune(y, cand, scores, 0, deg + 1, out, 0, m);
        System.arraycopy(out, 0, adj, y * m, n);
        degree[y] = n;
    }

    /**
     * Beam search from the routed entry keys for the vector {@code q[off .. off+d)}; leaves the best
     * {@code pool} (bounded at {@code limit}) and sets {@link #lastScan}.
     */
    private void beam(float[] q, int off, int limit, ScoreHeap pool) {
        if (++epoch == Integer.MAX_VALUE) {
            Arrays.fill(visited, 0);
            epoch = 1;
        }
        long scanned = 0;
        frontier.clear();
        // route: the probe nearest centroids' entry keys
        int p = Math.min(probe, centroidCount);
        ScoreHeap best = new ScoreHeap(Math.max(1, p), true);
        for (int a = 0; a < centroidCount; a++) {
            best.offer(VEC.dot(q, off, centroids, a * d, d) - centroidHalfNorms[a], a, p);
        }
        scanned += centroidCount;
        while (best.size() > 0) {
            int a = best.topId();
            best.pop();
            for (int e = 0; e < entriesPerRoute; e++) {
                int x = entries[a * entriesPerRoute + e];
                if (x >= 0 && visited[x] != epoch) {
                    visited[x] = epoch;
                    float s = VEC.dot(q, off, keys, x * d, d);
                    scanned++;
                    if (pool.offer(s, x, limit)) {
                        frontier.push(s, x);
                    }
                }
            }
        }
        while (frontier.size() > 0) {
            float s = frontier.topScore();
            int c = frontier.topId();
            if (pool.size() >= limit && ScoreHeap.better(pool.topScore(), pool.topId(), s, c)) {
                break;
            }
            frontier.pop();
            int base = c * m;
            for (int i = 0, deg = degree[c]; i < deg; i++) {
                int u = adj[base + i];
                if (visited[u] != epoch) {
                    visited[u] = epoch;
                    float su = VEC.dot(q, off, keys, u * d, d);
                    scanned++;
                    if (pool.offer(su, u, limit)) {
                        frontier.push(su, u);
                    }
                }
            }
        }
        lastScan = scanned;
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
        if (size == 0) {
            return new KeyHits(new int[0], new float[0], 0, 0);
        }
        int limit = Math.max(ef, k);
        ScoreHeap pool = new ScoreHeap(limit, true);
        beam(query, 0, limit, pool);
        while (pool.size() > k) {
            pool.pop();
        }
        return pool.drain(slots, lastScan, size);
    }

    @Override
    public int size() {
        Checks.open(closed);
        return size;
    }

    /** Mean out-degree of the graph. */
    public double meanDegree() {
        Checks.open(closed);
        long s = 0;
        for (int i = 0; i < size; i++) {
            s += degree[i];
        }
        return size == 0 ? 0 : (double) s / size;
    }

    @Override
    public long bytes() {
        Checks.open(closed);
        return 4L * keys.length
                + 4L * slots.length
                + 4L * adj.length
                + 4L * degree.length
                + 4L * visited.length
                + 4L * sample.length
                + 4L * centroids.length
                + 4L * centroidHalfNorms.length
                + 4L * entries.length
                + frontier.bytes()
                + present.serializedSizeInBytes();
    }

    @Override
    public void close() {
        closed = true;
        keys = new float[0];
        slots = new int[0];
        adj = new int[0];
        degree = new int[0];
        visited = new int[0];
        sample = new float[0];
        centroids = new float[0];
        entries = new int[0];
        present.clear();
    }
}
