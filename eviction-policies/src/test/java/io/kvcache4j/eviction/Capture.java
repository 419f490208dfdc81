package io.kvcache4j.eviction;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionTracker;

/** Wraps a policy and keeps the tracker it binds, so tests can read its slot columns. */
final class Capture implements EvictionPolicy {
    private final EvictionPolicy inner;
    EvictionTracker tracker;

    Capture(EvictionPolicy inner) {
        this.inner = inner;
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        tracker = inner.bind(cache);
        return tracker;
    }

    @SuppressWarnings("unchecked")
    <T extends EvictionTracker> T tracker() {
        return (T) tracker;
    }
}
