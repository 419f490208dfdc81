package io.kvcache4j.store;

import io.kvcache4j.attention.GroupAttention;

/**
 * The storage of the keys and values of one (layer, KV head): the seam where exact storage,
 * quantizing codecs and tiers plug into a cache.
 *
 * <p>A store only stores. The cache owns everything else about a slot (its position, the eviction
 * policies' metadata columns, the protection of tokens whose attention has not run yet) and tells
 * the store what to keep through {@link #compact}. A store numbers its slots {@code 0 .. count()-1}
 * in the order the cache decides; slot {@code i} of the store is slot {@code i} of the cache.
 *
 * <p><b>Granularity.</b> A store that cannot remove single tokens (a codec that packs keys per
 * channel over groups of {@code G} tokens, say) declares {@link #granularity()} {@code g > 1}. The
 * cache then keeps slots in append order and removes only whole aligned groups {@code [k·g,
 * (k+1)·g)} that are complete; eviction policies select whole groups (see {@code HeadSlots}).
 *
 * <p><b>Attention.</b> {@link #attend} feeds the selected slots to a running {@link GroupAttention}
 * (online softmax), which the caller began and will finish into a partial {@code (output, lse)}.
 * A store computes scores {@code q·K̂ᵀ} and weighted sums {@code p·V̂} on its own encoding, through
 * {@link GroupAttention#pushLogits} and {@link GroupAttention#accumulator()} or the kernels of its
 * module.
 *
 * <p><b>Bytes.</b> {@link #bytesHeld()} is exact: every byte the store holds for its tokens (codes,
 * scales, zero points, residual rows, page slack), on or off the heap.
 *
 * <p><b>Ownership and threads.</b> A store owns its memory and frees it in {@link #close()}. It is
 * driven by one thread at a time (the cache guarantees this and never calls it after close), with one
 * exception: the CPU layer source ({@code LayerAttention.cpu}) cuts a long store into chunks of slot
 * ranges and may call {@link #attend} for distinct chunks on several threads at once, each with its
 * own {@link GroupAttention}. A store's {@code attend} must therefore read shared state only, keep
 * its scratch per thread, or serialize itself.
 */
public interface HeadStore extends AutoCloseable {

    /** Slots held. */
    int count();

    /**
     * Eviction granularity {@code g >= 1}: slots leave only in complete aligned groups of {@code g}
     * (default 1: any slot, in any order).
     */
    default int granularity() {
        return 1;
    }

    /**
     * The largest magnitude this store accepts in a key or value (default {@link Float#MAX_VALUE}): the
     * cache rejects larger or non-finite inputs, naming the element, before anything is appended.
     */
    default float maxMagnitude() {
        return Float.MAX_VALUE;
    }

    /**
     * Appends {@code tokens} tokens as the newest slots: key row {@code t} is {@code headDim} floats at
     * {@code keys[keysOffset + t·rowStride ..]}, value row {@code t} likewise in {@code values}. The
     * cache has validated the values (finite, representable where the store says so).
     */
    void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens);

    /**
     * Compacts the store: afterwards it holds {@code newCount} slots, slots below {@code from} are
     * unchanged, slot {@code from + j} holds what slot {@code sources[j]} held for {@code j <
     * moved}, and slots {@code [from + moved, newCount)} are unchanged. The cache guarantees that
     * {@code sources[0..moved)} is strictly increasing, that {@code sources[j] >= from + j}, that no
     * source lies in {@code [from + moved, newCount)}. For {@code granularity() = g > 1} the cache only
     * removes whole complete groups and keeps append order: {@code from}, every {@code sources[j]} with
     * {@code j} a multiple of {@code g}, and the number of removed slots are multiples of {@code g},
     * and groups move whole ({@code sources[j + i] = sources[j] + i}). Memory past the new count may be
     * released at once.
     */
    void compact(int from, int[] sources, int moved, int newCount);

    /**
     * Feeds the slots of {@code selection} to the running attention in {@code state}, in increasing
     * slot order, numbering them by ordinal for the logit record.
     *
     * @throws IllegalArgumentException if the selection reaches past {@link #count()}
     */
    void attend(GroupAttention state, SlotSelection selection);

    /** Copies the key of {@code slot}, as the store reproduces it, into {@code dst[offset..offset+headDim)}. */
    void readKey(int slot, float[] dst, int offset);

    /** Copies the value of {@code slot}, as the store reproduces it, into {@code dst[offset..offset+headDim)}. */
    void readValue(int slot, float[] dst, int offset);

    /** Bytes held now, exactly (see the class comment). */
    long bytesHeld();

    /** Frees all memory. Idempotent. */
    @Override
    void close();
}
