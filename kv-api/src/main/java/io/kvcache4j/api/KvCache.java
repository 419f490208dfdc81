package io.kvcache4j.api;

import io.kvcache4j.attention.Partial;

/**
 * The KV cache of one sequence: what an inference engine hands its keys and values to, and asks for
 * attention outputs.
 *
 * <p><b>Exchange layout.</b> Keys and values travel token-major per layer: a row of {@code kvHeads ×
 * headDim} floats per token, heads concatenated ({@code [layer][token][kvHead*headDim]}), keys
 * already rotated (post-RoPE). Queries travel as rows of {@code queryHeads × headDim}; query head
 * {@code q} uses KV head {@code q / groupSize}.
 *
 * <p><b>Positions.</b> The cache numbers the tokens of each layer 0, 1, 2, … in append order. Every
 * appended token is attended exactly once, in order: {@link #attend} answers the oldest appended
 * tokens that have not been attended yet, each query seeing the tokens at or before its own position
 * that the cache still holds (causal attention). Engines append a prefill chunk, then attend it (in
 * one call or several), then do the same per decode step.
 *
 * <p><b>Eviction.</b> The cache's {@link EvictionPolicy} runs inside these calls: tokens may leave
 * after any {@code attend} (never before their own attention). {@link #endPrefill()} marks the end of
 * the prompt for one-shot policies.
 *
 * <p><b>Input checks.</b> Keys, values and queries must be finite, and keys and values must be
 * representable in the storage type (|x| ≤ 65504 for f16); otherwise the call throws {@link
 * IllegalArgumentException} naming the layer, token, head, element and value, and the cache is
 * unchanged.
 *
 * <p><b>Threads.</b> A cache is not thread-safe: one thread drives it at a time (hand-offs between
 * threads need a happens-before edge, e.g. an executor). Distinct caches share no mutable state, so N
 * caches driven by N threads give bit-identical results to the same work done serially.
 *
 * <p><b>Memory.</b> Keys and values live off-heap and belong to the cache; {@link #close()} frees
 * them at once. Any call after close throws {@link IllegalStateException}.
 */
public interface KvCache extends AutoCloseable {

    /** A builder for a cache of the given model shape. */
    static KvCacheBuilder builder(ModelShape shape) {
        return new KvCacheBuilder(shape);
    }

    ModelShape shape();

    KvDType dtype();

    /** Name of the eviction policy, e.g. {@code full}. */
    String policyName();

    /** Position the next token appended to {@code layer} gets (= tokens appended to it so far). */
    int nextPosition(int layer);

    /** Tokens of {@code layer} appended but not attended yet. */
    int pendingTokens(int layer);

    /** Tokens that ({@code layer}, {@code kvHead}) holds now. */
    int retainedTokens(int layer, int kvHead);

    /** Off-heap bytes the cache holds now (keys, values, positions, page slack), exactly. */
    long bytesHeld();

    /** Bytes of eviction bookkeeping (per-slot metadata and policy state), on-heap. */
    long metadataBytes();

    /**
     * Appends {@code tokens} tokens to {@code layer}: {@code tokens} rows of {@code kvHeads*headDim}
     * floats from {@code keys[keysOffset..]} and {@code values[valuesOffset..]}.
     *
     * @throws IllegalArgumentException on bad lengths or non-finite / unrepresentable values
     * @throws IllegalStateException if a head would exceed the cache's hard capacity, or the cache is
     *     closed
     */
    void append(int layer, float[] keys, int keysOffset, float[] values, int valuesOffset, int tokens);

    /**
     * Attention for the next {@code tokens} unattended tokens of {@code layer}: {@code tokens} query
     * rows from {@code queries[queriesOffset..]}, outputs (softmax-weighted values, per query head,
     * scaled by {@code 1/sqrt(headDim)}) into {@code out[outOffset..]} in the query layout.
     *
     * @throws IllegalStateException if fewer than {@code tokens} tokens are pending
     */
    void attend(int layer, float[] queries, int queriesOffset, int tokens, float[] out, int outOffset);

    /**
     * Like {@link #attend} for one token, but writes the per-head output and log-sum-exp into {@code
     * dst} (a partial with {@code queryHeads} heads) for merging with other sources by {@link
     * Partial#merge}.
     */
    void attendPartial(int layer, float[] queries, int queriesOffset, Partial dst);

    /**
     * Declares the prompt complete: one-shot policies (SnapKV, PyramidInfer's prefill stage)
     * compress now. Every appended token must have been attended.
     */
    void endPrefill();

    /** Read view of the tokens ({@code layer}, {@code kvHead}) holds. */
    HeadView view(int layer, int kvHead);

    /** Frees all memory. Idempotent. */
    @Override
    void close();
}
