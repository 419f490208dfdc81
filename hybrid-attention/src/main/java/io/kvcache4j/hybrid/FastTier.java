package io.kvcache4j.hybrid;

/**
 * The fast tier: where the KV that attention reads at full speed lives (GPU memory in a device
 * deployment). On the CPU it is a region of off-heap host memory bounded by a budget in bytes: an
 * allocation past the budget is refused with {@link TierFullException}, so a configuration that
 * would not fit on the device fails here too, at the same point. Thread-safe.
 */
public final class FastTier extends HostTier {

    /**
     * A fast tier of {@code capacityBytes} bytes.
     *
     * @throws IllegalArgumentException unless {@code capacityBytes >= 1}
     */
    public FastTier(long capacityBytes) {
        super("fast", capacityBytes);
    }

    /** A fast tier without a bound ({@link Long#MAX_VALUE} bytes), for measuring what a run needs. */
    public static FastTier unbounded() {
        return new FastTier(Long.MAX_VALUE);
    }
}
