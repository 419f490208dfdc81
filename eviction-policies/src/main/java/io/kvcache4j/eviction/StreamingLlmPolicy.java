package io.kvcache4j.eviction;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ScoreAggregation;

/**
 * StreamingLLM: attention sinks plus a sliding window of the most recent tokens. Xiao et al.,
 * "Efficient Streaming Language Models with Attention Sinks", ICLR 2024 (arXiv 2309.17453); the
 * reference cache is {@code StartRecentKVCache(start_size=4, recent_size=…)} in
 * mit-han-lab/streaming-llm.
 *
 * <p><b>Rule.</b> Each (layer, KV head) keeps the {@code sinkTokens} first positions (default 4)
 * and the {@code budgetTokens − sinkTokens} most recent positions; everything between is evicted.
 * The window is the rest of the budget, so that StreamingLLM is compared with the other policies at
 * equal memory; {@code recentTokens} is only a lower bound on it (checked by {@link PolicyConfig}).
 *
 * <p><b>Cadence.</b> Every step, before attention: when a single token waits (decode), the oldest
 * windowed token leaves before the new token's attention, so attention sees exactly the budget, as
 * in StreamingLLM. After a multi-token attend call (prefill chunks) the excess leaves in one batch.
 * Needs no attention scores. Keys are stored post-RoPE with their original positions (no position
 * shift; see the class comment of {@link io.kvcache4j.api.KvCache}).
 */
public final class StreamingLlmPolicy extends BudgetedPolicy {

    /**
     * @throws IllegalArgumentException unless {@code budgetTokens > sinkTokens} (the window needs at
     *     least the current token)
     */
    public StreamingLlmPolicy(PolicyConfig config) {
        super(config);
        if (config.budgetTokens() <= config.sinkTokens()) {
            throw new IllegalArgumentException("streaming: budgetTokens " + config.budgetTokens() + " must be in ["
                    + (config.sinkTokens() + 1L) + ", " + Integer.MAX_VALUE + "]: sinkTokens " + config.sinkTokens()
                    + " plus a window of at least 1 token");
        }
    }

    @Override
    public String name() {
        return "streaming";
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, config);
    }

    static final class Tracker extends BaseTracker {
        private final int budget;
        private final int window;

        Tracker(CacheAccess cache, PolicyConfig config) {
            super(cache, config);
            this.budget = config.budgetTokens();
            this.window = budget - config.sinkTokens();
        }

        @Override
        public ScoreAggregation scoreAggregation() {
            return null;
        }

        @Override
        public void beforeAttention(int layer, int queryPosition, float[] queries, int offset) {
            if (cache.pendingTokens(layer) == 1) {
                trim(layer);
            }
        }

        @Override
        public void afterAttention(int layer, int lastQueryPosition) {
            trim(layer);
        }

        private void trim(int layer) {
            int next = cache.nextPosition(layer);
            long oldestKept = (long) next - window;
            for (HeadSlots h : heads[layer]) {
                int count = h.count();
                if (count <= budget) {
                    continue;
                }
                ensureScratch(count);
                long[] pos = h.longColumn(posColumn);
                int n = 0;
                for (int s = 0; s < count; s++) {
                    long p = pos[s];
                    if (p >= sinks && p < oldestKept) {
                        victims[n++] = s;
                    }
                }
                evictSorted(h, n, false);
            }
        }
    }
}
