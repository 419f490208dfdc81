package io.kvcache4j.eviction;

import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.ModelShape;
import java.util.Objects;

/**
 * An {@link EvictionPolicy} with a token budget per layer and per KV head, built from a {@link
 * PolicyConfig}. Besides the budget it declares how far above it a cache may go: the lag of lagged
 * policies, and the decode tokens that one-shot policies do not compress by design.
 *
 * <p>Immutable and thread-safe; each {@link #bind} creates independent per-cache state.
 */
public abstract class BudgetedPolicy implements EvictionPolicy {
    /** The configuration this policy was built from. */
    protected final PolicyConfig config;

    protected BudgetedPolicy(PolicyConfig config) {
        this.config = Objects.requireNonNull(config, "config");
    }

    /** The configuration this policy was built from. */
    public final PolicyConfig config() {
        return config;
    }

    /**
     * Tokens that ({@code layer}, {@code kvHead}) of a model of {@code shape} keeps once the policy
     * has compressed (sinks and recent window included). The default is {@link
     * PolicyConfig#budgetTokens()} for every layer and head.
     */
    public int budgetTokens(ModelShape shape, int layer, int kvHead) {
        shape.checkLayer(layer);
        shape.checkKvHead(kvHead);
        return config.budgetTokens();
    }

    /**
     * The most tokens ({@code layer}, {@code kvHead}) holds whenever no appended token waits for its
     * attention, once {@link io.kvcache4j.api.KvCache#endPrefill()} has run and {@code decodedTokens}
     * tokens were appended after it. Per-step policies hold at most their budget at all times; the
     * default returns {@link #budgetTokens}.
     */
    public long maxRetainedTokens(ModelShape shape, int layer, int kvHead, int decodedTokens) {
        if (decodedTokens < 0) {
            throw new IllegalArgumentException(
                    "decodedTokens must be in [0, " + Integer.MAX_VALUE + "], was " + decodedTokens);
        }
        return budgetTokens(shape, layer, kvHead);
    }

    @Override
    public String toString() {
        return name() + " " + config;
    }
}
