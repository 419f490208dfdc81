package io.kvcache4j.store;

import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.attention.GroupAttention;

/**
 * The storage of one (layer, KV head): the seam where codecs and tiers plug into a cache.
 *
 * <p>{@link PagedHeadStore} keeps exact f32/f16/bf16 rows off-heap. A quantizing codec implements
 * this interface with packed codes and computes attention on them (scores {@code q·K̂ᵀ} and the
 * weighted sum {@code p·V̂}) through {@link GroupAttention}'s online-softmax protocol ({@link
 * GroupAttention#pushLogits}, {@link GroupAttention#accumulator()}); a tier implements it with the
 * rows on another device or in pinned host memory. The cache, the eviction policies and the engines
 * see only this interface, so any of them composes with any policy.
 *
 * <p>Implementations own their memory and free it in {@link #close()}; they are driven by one thread
 * at a time (the cache's).
 */
public interface HeadStore extends HeadSlots, AutoCloseable {

    /**
     * Appends one token: {@code headDim} key floats at {@code k[kOff..]} and value floats at {@code
     * v[vOff..]} (already validated by the cache), with its original {@code position}.
     */
    void append(float[] k, int kOff, float[] v, int vOff, int position);

    /**
     * Feeds slots {@code [0, visible)} to the running attention in {@code state} (the caller has
     * called {@link GroupAttention#begin} and will call {@link GroupAttention#finish}).
     */
    void attend(GroupAttention state, int visible);

    /** Bytes of on-heap per-slot metadata (eviction policies' columns). */
    long metadataBytes();

    /** Frees all memory. Idempotent. */
    @Override
    void close();

    /** How many of the store's newest slots still wait for their attention (they may not be evicted). */
    @FunctionalInterface
    interface PendingCounter {
        int pendingTokens();
    }
}
