package io.kvcache4j.hybrid;

/**
 * The slow tier: host memory off the Java heap (blocks from the C library through the FFM linker),
 * where offloaded KV lives. Optionally bounded like {@link FastTier}. Thread-safe.
 */
public final class SlowTier extends HostTier {

    /** An unbounded slow tier. */
    public SlowTier() {
        this(Long.MAX_VALUE);
    }

    /**
     * A slow tier of at most {@code capacityBytes} bytes.
     *
     * @throws IllegalArgumentException unless {@code capacityBytes >= 1}
     */
    public SlowTier(long capacityBytes) {
        super("slow", capacityBytes);
    }
}
