package io.kvcache4j.hybrid;

import java.lang.foreign.MemorySegment;

/**
 * A region of memory that KV blocks live in: the fast tier (device memory in a GPU deployment; here a
 * bounded region of host memory with the same contract, {@link FastTier}) or the slow tier (host
 * memory, {@link SlowTier}). Data moves between tiers through a {@link TransferEngine}.
 *
 * <p><b>Blocks.</b> {@link #allocate} returns a block of at least the requested size, rounded up to
 * {@link io.kvcache4j.store.NativeMemory#ALIGNMENT}; the block belongs to the caller, who returns it
 * with {@link #free} exactly once. {@link #bytesHeld()} is exact: the sum of the rounded sizes of the
 * live blocks, which {@link #blockBytes} gives in advance.
 *
 * <p><b>Capacity.</b> A tier refuses an allocation that would take {@link #bytesHeld()} past {@link
 * #capacityBytes()} with {@link TierFullException}, naming the request, the bytes held and the
 * capacity; nothing is allocated then.
 *
 * <p>Thread-safe: blocks may be allocated and freed from any thread (transfers run on their own).
 */
public interface Tier {

    /** Short name for reports and messages, e.g. {@code fast} or {@code slow}. */
    String name();

    /** Bytes this tier may hold at once ({@link Long#MAX_VALUE}: unbounded). */
    long capacityBytes();

    /** Bytes held now by live blocks, exactly. */
    long bytesHeld();

    /** Live blocks. */
    long blocksHeld();

    /** Bytes a block of {@code bytes} takes in this tier (the request rounded up to the alignment). */
    long blockBytes(long bytes);

    /**
     * Allocates a block of {@code bytes} (at least 1), uninitialised.
     *
     * @throws TierFullException if the block does not fit in the remaining capacity
     * @throws IllegalArgumentException if {@code bytes < 1}
     */
    MemorySegment allocate(long bytes);

    /**
     * Returns a block of this tier.
     *
     * @throws IllegalStateException if the block is not a live block of this tier
     */
    void free(MemorySegment block);
}
