package io.kvcache4j.eviction;

import io.kvcache4j.api.CacheAccess;
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
 * <p><b>Rule.</b> After each attend call, while a head holds more than {@code budgetTokens}, the
 * lowest-scoring token outside the sinks ({@code sinkTokens}, default 4; H2O itself has none, set
 * 0 for the original) and the recent window ({@code recentTokens}, default 32) leaves. The heavy
 * hitters are the rest of the budget: {@code budgetTokens − sinkTokens − recentTokens}. Each head
 * keeps its own set. Scores of tokens that stay keep accumulating; an evicted token never returns.
 *
 * <p><b>Cadence.</b> Every decode step, after attention (one O(1) eviction per head per step); after
 * a prefill chunk the excess leaves in one batch, ranked by the scores of all prompt queries of that
 * chunk, which is H2O's real-drop prefill.
 */
public final class H2OPolicy extends BudgetedPolicy {

    public H2OPolicy(PolicyConfig config) {
        super(config);
    }

    @Override
    public String name() {
        return "h2o";
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, config);
    }

    static final class Tracker extends BaseTracker {
        final int scoreColumn;
        private final int budget;

        Tracker(CacheAccess cache, PolicyConfig config) {
            super(cache, config);
            this.budget = config.budgetTokens();
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
