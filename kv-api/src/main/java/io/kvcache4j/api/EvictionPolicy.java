package io.kvcache4j.api;

/**
 * An eviction policy: immutable configuration (budgets, sinks, windows) that creates one {@link
 * EvictionTracker} per cache. Policies may be shared between caches and threads.
 *
 * <p>Every policy runs at one of three cadences, which the tracker's callbacks express: at every
 * decode step (before or after attention), lagged (every N steps, for a window of steps), or once
 * after prefill ({@link EvictionTracker#endPrefill()}).
 */
public interface EvictionPolicy {

    /** Name as used on the command line, e.g. {@code full}, {@code h2o}. */
    String name();

    /**
     * Creates the policy's state for one cache. Called once, while the cache is built and still
     * empty; the tracker registers its metadata columns here.
     */
    EvictionTracker bind(CacheAccess cache);
}
