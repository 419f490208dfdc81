package io.kvcache4j.eviction;

import io.kvcache4j.api.CacheAccess;
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
 * <p><b>Rule.</b> Once, at {@link io.kvcache4j.api.KvCache#endPrefill()}: keep the sinks, the
 * recent window ({@code recentTokens}; KVCache-Factory uses 64) and the top {@code budgetTokens −
 * sinkTokens − recentTokens} tokens by score; the rest leave at once (order preserved). Decode tokens
 * are not compressed, so a head holds at most {@code budgetTokens + decodedTokens}. Only the first
 * {@code endPrefill} compresses (one prompt per cache); scores stop accumulating after it.
 */
public final class H2OPrefillPolicy extends BudgetedPolicy {

    public H2OPrefillPolicy(PolicyConfig config) {
        super(config);
    }

    @Override
    public String name() {
        return "h2o-prefill";
    }

    @Override
    public long maxRetainedTokens(ModelShape shape, int layer, int kvHead, int decodedTokens) {
        return super.maxRetainedTokens(shape, layer, kvHead, decodedTokens) + decodedTokens;
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, config);
    }

    static final class Tracker extends BaseTracker {
        final int scoreColumn;
        private final int budget;
        private boolean prefillDone;

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
