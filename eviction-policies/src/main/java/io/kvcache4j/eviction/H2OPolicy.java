package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicyProvider;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ScoreAggregation;

/**
 * H2O, the decode-time heavy-hitter oracle. Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient
 * Generative Inference of Large Language Models", NeurIPS 2023 (arXiv 2306.14048); the rule follows
 * {@code H2OKVCache_LayerWise} in FMInference/H2O ({@code h2o_hf/utils_real_drop/modify_llama.py}).
 *
 * <p><b>Score.</b> Per KV head, each held token's accumulated attention: the sum, over every query
 * that has seen it so far (prompt queries included), of the softmax mass that query gave it. The
 * mass comes fused from the cache's attention pass ({@link EvictionTracker#onScores}), reduced over
 * the GQA group by {@link ScoreAggregation#MEAN} (the original is multi-head; the mean keeps one
 * query's worth of mass per step and does not change the ranking within a head).
 *
 * <p><b>Parameters.</b> Only the {@link Budget} ({@link Config}): {@code tokens}, {@code sinkTokens}
 * (default 4; H2O itself has none, set 0 for the original) and {@code recentTokens} (default a
 * quarter of the budget, at most 32).
 *
 * <p><b>Rule.</b> After each attend call, while a head holds more than {@code tokens}, the
 * lowest-scoring token outside the sinks and the recent window leaves. The heavy hitters are the
 * rest of the budget: {@code tokens − sinkTokens − recentTokens}. Each head keeps its own set.
 * Scores of tokens that stay keep accumulating; an evicted token never returns.
 *
 * <p><b>Cadence.</b> Every decode step, after attention (one O(1) eviction per head per step); after
 * a prefill chunk the excess leaves in one batch, ranked by the scores of all prompt queries of that
 * chunk, which is H2O's real-drop prefill.
 */
public final class H2OPolicy extends BudgetedPolicy {
    static final String NAME = "h2o";

    /**
     * H2O's configuration: the budget alone.
     *
     * @param budget tokens per (layer, KV head), sinks and recent window included; not a fraction
     */
    public record Config(Budget budget) {
        /** @throws IllegalArgumentException if {@code budget} is a fraction of the prompt */
        public Config {
            budget = tokenBudget(budget);
        }

        /** The configuration for {@code budget} (H2O has no other parameter). */
        public static Config defaults(Budget budget) {
            return new Config(budget);
        }
    }

    private final Config config;

    public H2OPolicy(Config config) {
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
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, budget);
    }

    /** Registers {@code h2o} with {@link io.kvcache4j.api.EvictionPolicies}. */
    public static final class Provider implements EvictionPolicyProvider {
        @Override
        public String name() {
            return NAME;
        }

        @Override
        public String description() {
            return "H2O: heavy hitters by accumulated attention, evicted at every decode step";
        }

        @Override
        public H2OPolicy create(Budget budget) {
            return new H2OPolicy(Config.defaults(budget));
        }
    }

    static final class Tracker extends BaseTracker {
        final int scoreColumn;
        private final int budget;

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
            float[] score = heads[layer][kvHead].floatColumn(scoreColumn);
            for (int i = 0; i < slots; i++) {
                score[i] += mass[i];
            }
        }

        @Override
        public void afterAttention(int layer, int lastQueryPosition) {
            int next = cache.nextPosition(layer);
            for (HeadSlots h : heads[layer]) {
                int count = h.count();
                if (count <= budget) {
                    continue;
                }
                int m = candidates(h, h.floatColumn(scoreColumn), next);
                evictSmallest(h, m, count - budget, false);
            }
        }
    }
}
