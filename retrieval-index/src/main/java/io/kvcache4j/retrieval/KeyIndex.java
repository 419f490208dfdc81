package io.kvcache4j.retrieval;

/**
 * A top-k inner-product index over the keys of one (layer, KV head). Keys enter in batches, each
 * key under a caller-chosen <em>slot</em> (the store's slot id, {@code >= 0}, unique per index); a
 * search returns the slots of the {@code k} keys with the largest {@code q·k} that the index finds
 * (exactly for {@code flat}, approximately for graphs) and how many distance computations it spent.
 *
 * <p>Batches: graph indexes pay per inserted key (an HNSW insert is a beam search of {@code
 * efConstruction} plus neighbour pruning: jelmerk's hnswlib manages about 10³ inserts per second at
 * d = 128), so one insert per decode token per (layer, KV head) is far too slow. Callers index the
 * prefill in one batch and keep recent tokens in an exact window that they flush into the index in
 * batches of their choosing; {@link #add} is that batch operation.
 *
 * <p>Queries: attention queries and keys come from different distributions (RetrievalAttention,
 * Liu et al. 2024, arXiv 2409.10516). {@link #observeQueries} hands the index sample queries (for
 * instance prefill queries) before a batch is added; an attention-aware index uses them to shape
 * the edges it builds for later batches, the others ignore them.
 *
 * <p>Arguments are checked: {@code k < 1}, vectors of the wrong length and non-finite components
 * are rejected with {@link IllegalArgumentException}s naming the value and its allowed range. After
 * {@link #close()} every method but {@link #close()} and {@link #name()} throws {@link
 * IllegalStateException}.
 *
 * <p>Not thread-safe: one thread adds or searches at a time (a search reuses scratch arrays and
 * counts its distance computations in the index).
 */
public interface KeyIndex extends AutoCloseable {

    /** The provider's name, e.g. {@code hnsw}. */
    String name();

    /** The key dimension {@code d}. */
    int dimension();

    /**
     * Indexes {@code count} keys: key {@code i} is {@code keys[i·d .. (i+1)·d)} and is stored under
     * {@code slots[i]}. The keys are copied. Slots must be {@code >= 0} and not yet indexed.
     *
     * @throws IllegalArgumentException if {@code count} is out of range, a slot is negative or
     *     repeated, {@code keys} is shorter than {@code count·d}, or a key component is not finite
     */
    void add(int[] slots, float[] keys, int count);

    /**
     * Hands the index {@code count} sample queries ({@code queries[i·d .. (i+1)·d)}) whose top keys
     * later batches should be easy to reach from. The default ignores them; the queries are checked
     * by the implementations that keep them.
     */
    default void observeQueries(float[] queries, int count) {}

    /** {@link #search(float[], int, int)} with the index's configured candidate pool ({@code ef}). */
    KeyHits search(float[] query, int k);

    /**
     * The slots of the (approximate) top {@code k} keys by {@code query·key}, best first, ties by
     * lower slot. Fewer than {@code k} when the index holds fewer keys.
     *
     * @param ef the candidate pool of a graph search, raised to {@code k} when smaller; an exact
     *     index ignores it
     * @throws IllegalArgumentException if {@code k < 1}, {@code ef < 1}, the query's length is not
     *     {@link #dimension()} or a component is not finite
     */
    KeyHits search(float[] query, int k, int ef);

    /** Number of indexed keys. */
    int size();

    /**
     * Bytes the index holds for its keys and structure: each implementation documents what it counts
     * and whether the figure is exact or a layout estimate.
     */
    long bytes();

    /** Releases the index's memory; idempotent. */
    @Override
    void close();
}
