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
 * <p><b>Threads.</b> One thread drives a cache at a time. This is enforced: a call that arrives
 * while another thread is inside the cache throws {@link IllegalStateException} before touching
 * anything, so misuse cannot corrupt the cache or return wrong outputs as valid. Hand-offs between
 * threads need no further synchronisation. {@link #close()} may come from any thread at any time: on
 * an idle cache it frees at once; during a call it marks the cache closed and the thread inside frees
 * the memory as it leaves. Distinct caches share no mutable state, so N caches driven by N threads
 * give bit-identical results to the same work done serially.
 *
 * <p><b>Memory.</b> Keys and values live in the cache's stores (off-heap for exact storage) and
 * belong to the cache; {@link #close()} frees them. Any call after close throws {@link
 * IllegalStateException}.
 */
public interface KvCache extends AutoCloseable {

    /** A builder for a cache of the given model shape. */
    static KvCacheBuilder builder(ModelShape shape) {
        return new KvCacheBuilder(shape);
    }

    ModelShape shape();

    /** Name of the storage, e.g. {@code f16} or a codec's name ({@link io.kvcache4j.store.HeadStoreFactory#name}). */
    String storage();

    /** Name of the eviction policy, e.g. {@code full}. */
    String policyName();

    /** Position the next token appended to {@code layer} gets (= tokens appended to it so far). */
    int nextPosition(int layer);

    /** Tokens of {@code layer} appended but not attended yet. */
    int pendingTokens(int layer);

    /** Tokens that ({@code layer}, {@code kvHead}) holds now. */
    int retainedTokens(int layer, int kvHead);

    /**
     * Bytes the cache's stores hold now for keys and values (codes, scales and page slack included),
     * exactly.
     */
    long bytesHeld();

    /** Bytes of bookkeeping on the heap: positions, policies' per-slot columns and their state. */
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
     * Like {@link #attend}, and also writes the log-sum-exp of the scaled logits of every (token,
     * query head) to {@code lse[lseOffset + t·queryHeads + q]} ({@code −∞} where a head sees no
     * token), so the outputs merge exactly with attention over other sources ({@link Partial}).
     */
    void attendPartial(
            int layer,
            float[] queries,
            int queriesOffset,
            int tokens,
            float[] out,
            int outOffset,
            float[] lse,
            int lseOffset);

    /**
     * {@link #attendPartial(int, float[], int, int, float[], int, float[], int)} for one token, into
     * a partial with {@code queryHeads} heads.
     */
    void attendPartial(int layer, float[] queries, int queriesOffset, Partial dst);

    /**
     * Declares the prompt complete: one-shot policies (SnapKV, PyramidInfer's prefill stage)
     * compress now. Every appended token must have been attended.
     */
    void endPrefill();

    /** Read view of the tokens ({@code layer}, {@code kvHead}) holds. */
    HeadView view(int layer, int kvHead);

    /** Frees all memory; safe from any thread, idempotent. */
    @Override
    void close();
}
