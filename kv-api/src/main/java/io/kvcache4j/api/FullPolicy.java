package io.kvcache4j.api;

/** No eviction: every token stays. The baseline every other policy is compared with. */
public final class FullPolicy implements EvictionPolicy {
    /** The shared instance. */
    public static final FullPolicy INSTANCE = new FullPolicy();

    private static final EvictionTracker TRACKER = () -> null;

    private FullPolicy() {}

    @Override
    public String name() {
        return "full";
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return TRACKER;
    }
}
