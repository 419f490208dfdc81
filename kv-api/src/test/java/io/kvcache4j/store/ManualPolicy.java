package io.kvcache4j.store;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionTracker;

/** A policy that never evicts by itself and hands its cache access to the test, which evicts by hand. */
final class ManualPolicy implements EvictionPolicy {
    CacheAccess access;

    @Override
    public String name() {
        return "manual";
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        this.access = cache;
        return () -> null;
    }
}
