package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.ModelShape;
import java.util.Objects;

/**
 * An {@link EvictionPolicy} with a token {@link Budget} per layer and per KV head (sinks and recent
 * window included), built from its own configuration record (e.g. {@link SnapKvPolicy.Config}).
 * Besides the budget it declares how far above it a cache may go: the lag of lagged policies, and
 * the decode tokens that one-shot policies do not compress by design.
 *
 * <p>Immutable and thread-safe; each {@link #bind} creates independent per-cache state.
 */
public abstract class BudgetedPolicy implements EvictionPolicy {
    /** The budget in tokens this policy was built with. */
    protected final Budget budget;

    /**
     * @throws IllegalArgumentException if {@code budget} is a fraction (resolve it against the prompt
     *     length first)
     */
    protected BudgetedPolicy(Budget budget) {
        this.budget = Objects.requireNonNull(budget, "budget").requireTokens();
    }

    /** The budget in tokens this policy was built with. */
    public final Budget budget() {
        return budget;
    }

    /** The configuration record this policy was built from (its budget is {@link #budget()}). */
    public abstract Record config();

    /**
     * Tokens that ({@code layer}, {@code kvHead}) of a model of {@code shape} keeps once the policy
     * has compressed (sinks and recent window included). The default is {@link Budget#tokens()} for
     * every layer and head.
     */
    public int budgetTokens(ModelShape shape, int layer, int kvHead) {
        shape.checkLayer(layer);
        shape.checkKvHead(kvHead);
        return budget.tokens();
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
        return name() + " " + config();
    }

    /** {@code budget} in tokens, for a configuration record's compact constructor. */
    static Budget tokenBudget(Budget budget) {
        return Objects.requireNonNull(budget, "budget").requireTokens();
    }

    /** {@code value} if {@code >= min}; else an exception naming the policy, parameter, value and range. */
    static int atLeast(String policy, String name, int value, int min) {
        if (value < min) {
            throw new IllegalArgumentException(
                    policy + ": " + name + " must be in [" + min + ", " + Integer.MAX_VALUE + "], was " + value);
        }
        return value;
    }

    /** {@code value} if in (0, 1]; else an exception naming the policy, parameter, value and range. */
    static double ratio(String policy, String name, double value) {
        if (!(value > 0 && value <= 1)) {
            throw new IllegalArgumentException(policy + ": " + name + " must be in (0, 1], was " + value);
        }
        return value;
    }
}
