package io.kvcache4j.api;

/**
 * What an {@link EvictionTracker} may see and do of the cache that owns it. Valid for the cache's
 * lifetime; not thread-safe.
 */
public interface CacheAccess {

    ModelShape shape();

    /** The slots of ({@code layer}, {@code kvHead}). */
    HeadSlots head(int layer, int kvHead);

    /** Position the next appended token of {@code layer} will get (= tokens appended so far). */
    int nextPosition(int layer);

    /** Appended tokens of {@code layer} whose attention has not run yet. */
    int pendingTokens(int layer);

    /**
     * Computes, without changing the cache, the softmax mass that the {@code groupSize} query heads
     * at {@code queries[offset..]} give each of the first {@code visibleSlots} slots of ({@code
     * layer}, {@code kvHead}), reduced by {@code aggregation}, into {@code massOut}. Used by
     * one-shot policies that score the prompt with a window of saved queries.
     */
    void attentionMass(
            int layer,
            int kvHead,
            float[] queries,
            int offset,
            int visibleSlots,
            ScoreAggregation aggregation,
            float[] massOut);
}
