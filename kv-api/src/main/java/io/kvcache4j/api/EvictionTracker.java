package io.kvcache4j.api;

/**
 * Per-cache state of an {@link EvictionPolicy}, driven by the cache. All callbacks run on the thread
 * that drives the cache, in this order for each layer and each query token: {@link #afterAppend}
 * once per append call, then for each query {@link #beforeAttention}, the attention pass (with
 * {@link #onScores} per KV head if {@link #scoreAggregation()} is not null), then {@link
 * #afterAttention} once per attend call. {@link #endPrefill()} runs once when the engine declares
 * the prompt complete.
 *
 * <p>Trackers evict through {@link HeadSlots#evict} and {@link HeadSlots#evictAll}. Callbacks must
 * not allocate per token in steady state.
 */
public interface EvictionTracker {

    /**
     * The reduction over a GQA group that {@link #onScores} wants, or {@code null} if the policy
     * needs no attention scores (then the kernel records none).
     */
    ScoreAggregation scoreAggregation();

    /** {@code tokens} rows were appended to every KV head of {@code layer}; they are the newest slots. */
    default void afterAppend(int layer, int tokens) {}

    /**
     * Before the attention of the query at {@code queryPosition}; {@code queries[offset..]} holds the
     * query heads of that token ({@code queryHeads * headDim} floats, post-RoPE). Pre-attention
     * policies evict here.
     */
    default void beforeAttention(int layer, int queryPosition, float[] queries, int offset) {}

    /**
     * Softmax mass that the query at {@code queryPosition} gave each of the first {@code slots} slots
     * of ({@code layer}, {@code kvHead}), reduced over the group. The array is scratch: read it now.
     */
    default void onScores(int layer, int kvHead, int queryPosition, float[] mass, int slots) {}

    /** After the attention of every query of one attend call; {@code lastQueryPosition} was the last. */
    default void afterAttention(int layer, int lastQueryPosition) {}

    /** The prompt is complete (every appended token attended); one-shot policies compress here. */
    default void endPrefill() {}

    /** Bytes of state the tracker holds outside the slot columns (0 if none). */
    default long stateBytes() {
        return 0;
    }
}
