package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicyProvider;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;

/**
 * The prefill-only H2O variant of KVCache-Factory ({@code H2OKVCluster} in Zefan-Cai/KVCache-Factory
 * {@code pyramidkv/pyramidkv_utils.py}), after Zhang et al., H2O, NeurIPS 2023 (arXiv 2306.14048).
 * Not to be confused with {@link H2OPolicy}, the decode-time original: numbers of the two differ.
 *
 * <p><b>Score.</b> Per KV head, the attention each prompt token received, summed over every prompt
 * query (fused from the attention pass, mean over the GQA group).
 *
 * <p><b>Parameters.</b> Only the {@link Budget} ({@link Config}): {@code tokens}, {@code sinkTokens}
 * (default 4) and {@code recentTokens} (default a quarter of the budget, at most 32; KVCache-Factory
 * uses 64).
 *
 * <p><b>Rule.</b> Once, at {@link io.kvcache4j.api.KvCache#endPrefill()}: keep the sinks, the
 * recent window and the top {@code tokens − sinkTokens − recentTokens} tokens by score; the rest
 * leave at once (order preserved). Decode tokens are not compressed, so a head holds at most {@code
 * tokens + decodedTokens}. Only the first {@code endPrefill} compresses (one prompt per cache);
 * scores stop accumulating after it.
 */
public final class H2OPrefillPolicy extends BudgetedPolicy {
    static final String NAME = "h2o-prefill";

    /**
     * The prefill-only H2O's configuration: the budget alone.
     *
     * @param budget tokens per (layer, KV head), sinks and recent window included; not a fraction
     */
    public record Config(Budget budget) {
        /** @throws IllegalArgumentException if {@code budget} is a fraction of the prompt */
        public Config {
            budget = tokenBudget(budget);
        }

        /** The configuration for {@code budget} (the policy has no other parameter). */
        public static Config defaults(Budget budget) {
            return new Config(budget);
        }
    }

    private final Config config;

    public H2OPrefillPolicy(Config config) {
        super(config.budget());
        this.config = config;
    }

    @Override
    public String name() {
        return NAME;
    }

    @Override
    public Config config() {
        return config;
    }

    @Override
    public long maxRetainedTokens(ModelShape shape, int layer, int kvHead, int decodedTokens) {
        return super.maxRetainedTokens(shape, layer, kvHead, decodedTokens) + decodedTokens;
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, budget);
    }

    /** Registers {@code h2o-prefill} with {@link io.kvcache4j.api.EvictionPolicies}. */
    public static final class Provider implements EvictionPolicyProvider {
        @Override
        public String name() {
            return NAME;
        }

        @Override
        public String description() {
            return "KVCache-Factory's H2O: heavy hitters of the prompt, compressed once after prefill";
        }

        @Override
        public H2OPrefillPolicy create(Budget budget) {
            return new H2OPrefillPolicy(Config.defaults(budget));
        }
    }

    static final class Tracker extends BaseTracker {
        final int scoreColumn;
        private final int budget;
        private boolean prefillDone;

        Tracker(CacheAccess cache, Budget budget) {
            super(cache, budget);
            this.budget = budget.tokens();
            this.scoreColumn = addFloatColumn();
        }

        @Override
        public ScoreAggregation scoreAggregation() {
            return ScoreAggregation.MEAN;
        }

        @Override
        public void onScores(int layer, int kvHead, int queryPosition, float[] mass, int slots) {
            if (prefillDone) {
                return;
            }
            float[] score = heads[layer][kvHead].floatColumn(scoreColumn);
            for (int i = 0; i < slots; i++) {
                score[i] += mass[i];
            }
        }

        @Override
        public void endPrefill() {
            if (prefillDone) {
                return;
            }
            prefillDone = true;
            for (int l = 0; l < shape.layers(); l++) {
                int next = cache.nextPosition(l);
                for (HeadSlots h : heads[l]) {
                    int count = h.count();
                    if (count <= budget) {
                        continue;
                    }
                    int m = candidates(h, h.floatColumn(scoreColumn), next);
                    evictSmallest(h, m, count - budget, true);
                }
            }
        }
    }
}
