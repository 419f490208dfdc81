package io.kvcache4j.hybrid;

import io.kvcache4j.retrieval.KeyHits;
import io.kvcache4j.retrieval.KeyIndex;
import io.kvcache4j.retrieval.KeyIndexOptions;
import io.kvcache4j.retrieval.KeyIndexes;
import java.util.Arrays;
import java.util.Objects;

/**
 * A {@link TokenSelector} backed by an approximate nearest-neighbour {@link KeyIndex} of the
 * retrieval-index module ({@code roar}, {@code hnsw}, or {@code flat}), as RetrievalAttention (Liu et
 * al., arXiv 2409.10516) retrieves the slow tier's keys through an index instead of scanning them.
 *
 * <p><b>Building.</b> Rows reach the index in batches: every {@link #rowsChanged} adds the new rows
 * {@code [firstChanged, rows)} in one {@link KeyIndex#add} call (a prefill chunk, or one row per decode
 * step once the recent window slides). A compaction re-places the region ({@code firstChanged = 0}),
 * and the index is rebuilt from the region's rows.
 *
 * <p><b>Queries.</b> Every query the selector serves is handed to {@link KeyIndex#observeQueries}
 * first, so that an attention-aware index ({@code roar}) shapes the batches it indexes later with
 * the queries that came before them (in a prefill, each chunk's queries shape the next chunk's
 * keys); an index that ignores queries is unaffected.
 *
 * <p><b>Selection.</b> Each query head of the GQA group searches the index for its top {@code k} (plus
 * the indexed rows the query may not see, the later tokens of a prefill chunk); the union of their
 * hits (rows below {@code rows} only) is rescored exactly, {@code max_h q_h·k}, and the
 * best {@code k} are returned in increasing row order. {@link #keysScanned()} counts the index's
 * distance computations plus the rescored candidates.
 *
 * <p>Allocation: scratch grows only when the region or the union outgrows it.
 */
public final class IndexSelector implements TokenSelector {
    private final String kind;
    private final KeyIndexOptions options;
    private final int headDim;
    private KeyIndex index;
    private long scanned;
    private float[] batch = new float[0];
    private int[] batchSlots = new int[0];
    private final float[] key;
    private final float[] query;
    private int[] candidates = new int[0];
    private float[] candidateScores = new float[0];
    private boolean[] seen = new boolean[0];

    IndexSelector(String kind, KeyIndexOptions options, int headDim) {
        this.kind = Objects.requireNonNull(kind, "kind");
        this.options = Objects.requireNonNull(options, "options");
        this.headDim = headDim;
        this.key = new float[headDim];
        this.query = new float[headDim];
        this.index = KeyIndexes.create(kind, headDim, options);
    }

    /** Selectors backed by the index called {@code kind} with {@code options} (e.g. {@code "ef=64"}). */
    public static TokenSelector.Factory factory(String kind, String options) {
        KeyIndexOptions parsed = KeyIndexOptions.parse(options);
        // Fail on an unknown kind or bad options now, not when the first store is created.
        KeyIndexes.provider(kind);
        return spec -> new IndexSelector(kind, parsed, spec.headDim());
    }

    @Override
    public void rowsChanged(KeyRows keys, int firstChanged) {
        int rows = keys.rows();
        if (firstChanged == 0 && index.size() > 0) {
            index.close();
            index = KeyIndexes.create(kind, headDim, options);
        }
        int from = firstChanged == 0 ? 0 : Math.max(firstChanged, index.size());
        int n = rows - from;
        if (n <= 0) {
            return;
        }
        if (batch.length < n * headDim) {
            batch = new float[Math.max(n * headDim, batch.length * 2)];
            batchSlots = new int[Math.max(n, batchSlots.length * 2)];
        }
        for (int i = 0; i < n; i++) {
            keys.readKey(from + i, batch, i * headDim);
            batchSlots[i] = from + i;
        }
        index.add(batchSlots, batch, n);
    }

    @Override
    public int select(KeyRows keys, int rows, float[] queries, int group, int k, int[] out) {
        int want = Math.min(k, rows);
        if (want <= 0) {
            return 0;
        }
        if (index.size() < keys.rows()) {
            rowsChanged(keys, index.size());
        }
        if (seen.length < rows) {
            seen = new boolean[Math.max(rows, seen.length * 2)];
        }
        // Rows at and past `rows` are indexed but not visible to this query (later tokens of a
        // prefill chunk): ask for that many more, so that `want` visible ones remain after filtering.
        int ask = (int) Math.min(Integer.MAX_VALUE, (long) want + Math.max(0, index.size() - rows));
        // The queries shape the batches indexed after them (an attention-aware index links the keys
        // that real queries find, RetrievalAttention's answer to the query/key distribution gap).
        index.observeQueries(queries, group);
        int m = 0;
        for (int h = 0; h < group; h++) {
            System.arraycopy(queries, h * headDim, query, 0, headDim);
            KeyHits hits = index.search(query, ask);
            scanned += hits.scanned();
            for (int i = 0; i < hits.count(); i++) {
                int slot = hits.slot(i);
                if (slot < rows && !seen[slot]) {
                    seen[slot] = true;
                    if (candidates.length == m) {
                        candidates = Arrays.copyOf(candidates, Math.max(16, m * 2));
                        candidateScores = Arrays.copyOf(candidateScores, candidates.length);
                    }
                    candidates[m++] = slot;
                }
            }
        }
        for (int i = 0; i < m; i++) {
            seen[candidates[i]] = false;
        }
        if (m <= want) {
            Arrays.sort(candidates, 0, m);
            System.arraycopy(candidates, 0, out, 0, m);
            return m;
        }
        // Rescore the union exactly and keep the best `want`.
        for (int i = 0; i < m; i++) {
            keys.readKey(candidates[i], key, 0);
            float best = Float.NEGATIVE_INFINITY;
            for (int h = 0; h < group; h++) {
                float dot = 0;
                for (int x = 0; x < headDim; x++) {
                    dot = Math.fma(queries[h * headDim + x], key[x], dot);
                }
                best = Math.max(best, dot);
            }
            candidateScores[i] = best;
        }
        scanned += m;
        // Partial selection sort of the `want` best (ties by lower row), then increasing rows.
        for (int i = 0; i < want; i++) {
            int bi = i;
            for (int j = i + 1; j < m; j++) {
                if (candidateScores[j] > candidateScores[bi]
                        || (candidateScores[j] == candidateScores[bi] && candidates[j] < candidates[bi])) {
                    bi = j;
                }
            }
            int ts = candidates[i];
            candidates[i] = candidates[bi];
            candidates[bi] = ts;
            float tf = candidateScores[i];
            candidateScores[i] = candidateScores[bi];
            candidateScores[bi] = tf;
        }
        Arrays.sort(candidates, 0, want);
        System.arraycopy(candidates, 0, out, 0, want);
        return want;
    }

    @Override
    public long keysScanned() {
        return scanned;
    }

    @Override
    public String name() {
        return kind;
    }
}
