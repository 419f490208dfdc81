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

    /** Registers {@code full} with {@link EvictionPolicies}. */
    static final class Provider implements EvictionPolicyProvider {
        @Override
        public String name() {
            return "full";
        }

        @Override
        public String description() {
            return "no eviction: every token stays (the baseline)";
        }

        @Override
        public EvictionPolicy create(Budget budget) {
            return INSTANCE;
        }
    }
}
