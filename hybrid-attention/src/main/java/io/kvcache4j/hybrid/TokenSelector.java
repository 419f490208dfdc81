package io.kvcache4j.hybrid;

import io.kvcache4j.store.HeadStoreFactory;

/**
 * Chooses which offloaded keys of one (layer, KV head) a query attends exactly: the seam where an
 * approximate nearest-neighbour index over keys plugs into retrieval attention. {@link FlatSelector}
 * is the exact reference (a full scan).
 *
 * <p><b>Contract.</b> {@link #select} returns up to {@code k} rows of {@code [0, rows)} of the
 * region's {@link KeyRows} (all of them when {@code k >= rows}), in increasing order, preferring the
 * rows whose key has the largest inner product with any of the group's queries, {@code max_h q_h·k}
 * (RetrievalAttention's maximum inner product search, one search per KV head for the whole GQA
 * group). An index may return fewer or different rows; it reports how many keys it read in full
 * through {@link #keysScanned()}, which is what an index saves.
 *
 * <p><b>Changes.</b> The region grows by appends at the end and is re-placed wholesale on
 * compaction; {@link #rowsChanged} tells an index to catch up before the next {@link #select}.
 *
 * <p>One selector per (layer, KV head), driven by one thread at a time.
 */
public interface TokenSelector {

    /** Creates the selector of one (layer, KV head). */
    @FunctionalInterface
    interface Factory {
        TokenSelector create(HeadStoreFactory.Spec spec);
    }

    /**
     * Writes into {@code out[0..n)} the chosen rows of {@code keys}, increasing, and returns {@code n
     * <= min(k, rows)}.
     *
     * @param keys the region's keys
     * @param rows rows that may be chosen: {@code [0, rows)}, at most {@code keys.rows()}
     * @param queries the group's queries, already scaled, head-major {@code [group][headDim]}
     * @param group query heads sharing the KV head
     * @param k most rows to choose, {@code >= 0}
     * @param out at least {@code min(k, rows)} long
     */
    int select(KeyRows keys, int rows, float[] queries, int group, int k, int[] out);

    /** Keys read in full by {@link #select} so far. */
    long keysScanned();

    /**
     * The region changed: rows {@code [firstChanged, keys.rows())} are new or re-placed (0 after a
     * compaction). Default: nothing (a scan needs no index).
     */
    default void rowsChanged(KeyRows keys, int firstChanged) {}

    /** Short name for reports, e.g. {@code flat}. */
    String name();
}
