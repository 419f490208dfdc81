package io.kvcache4j.hybrid;

import io.kvcache4j.store.NativeMemory;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The common implementation of the two host tiers: blocks from {@link NativeMemory} (off-heap, through
 * the FFM linker, freed at once), a reservation against the capacity before each allocation, and a
 * record of this tier's live blocks so that a block of another tier, or one freed twice, is refused.
 * Thread-safe.
 */
abstract sealed class HostTier implements Tier permits FastTier, SlowTier {
    private final String name;
    private final long capacityBytes;
    private final ConcurrentHashMap<Long, Long> live = new ConcurrentHashMap<>();
    private long held;
    private long peak;

    HostTier(String name, long capacityBytes) {
        if (capacityBytes < 1) {
            throw new IllegalArgumentException(
                    name + " tier capacityBytes must be in [1, " + Long.MAX_VALUE + "], was " + capacityBytes);
        }
        this.name = name;
        this.capacityBytes = capacityBytes;
    }

    @Override
    public final String name() {
        return name;
    }

    @Override
    public final long capacityBytes() {
        return capacityBytes;
    }

    @Override
    public final synchronized long bytesHeld() {
        return held;
    }

    /** The most bytes this tier has held at once since it was created (its high-water mark). */
    public final synchronized long peakBytes() {
        return peak;
    }

    @Override
    public final long blocksHeld() {
        return live.size();
    }

    @Override
    public final long blockBytes(long bytes) {
        if (bytes < 1) {
            throw new IllegalArgumentException("block size must be >= 1 byte, was " + bytes);
        }
        return (bytes + NativeMemory.ALIGNMENT - 1) & -NativeMemory.ALIGNMENT;
    }

    @Override
    public final MemorySegment allocate(long bytes) {
        long size = blockBytes(bytes);
        synchronized (this) {
            if (size > capacityBytes - held) {
                throw new TierFullException(name, size, held, capacityBytes);
            }
            held += size;
            peak = Math.max(peak, held);
        }
        MemorySegment block;
        try {
            block = NativeMemory.allocate(size);
        } catch (RuntimeException | Error e) {
            synchronized (this) {
                held -= size;
            }
            throw e;
        }
        live.put(block.address(), size);
        return block;
    }

    @Override
    public final void free(MemorySegment block) {
        Long size = live.remove(block.address());
        if (size == null) {
            throw new IllegalStateException("block at 0x" + Long.toHexString(block.address())
                    + " is not a live block of the " + name + " tier (freed twice, or from another tier)");
        }
        NativeMemory.free(block);
        synchronized (this) {
            held -= size;
        }
    }

    @Override
    public String toString() {
        return name + " tier (" + bytesHeld() + " of "
                + (capacityBytes == Long.MAX_VALUE ? "unbounded" : capacityBytes + " bytes") + ")";
    }
}
