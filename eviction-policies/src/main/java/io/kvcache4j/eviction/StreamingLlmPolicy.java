package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicyProvider;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ScoreAggregation;

/**
 * StreamingLLM: attention sinks plus a sliding window of the most recent tokens. Xiao et al.,
 * "Efficient Streaming Language Models with Attention Sinks", ICLR 2024 (arXiv 2309.17453); the
 * reference cache is {@code StartRecentKVCache(start_size=4, recent_size=…)} in
 * mit-han-lab/streaming-llm.
 *
 * <p><b>Parameters.</b> Only the {@link Budget}: {@code tokens}, {@code sinkTokens} (default 4) and
 * {@code recentTokens} ({@link Config}).
 *
 * <p><b>Rule.</b> Each (layer, KV head) keeps the {@code sinkTokens} first positions and the {@code
 * tokens − sinkTokens} most recent positions; everything between is evicted. The window is the rest
 * of the budget, so that StreamingLLM is compared with the other policies at equal memory; {@code
 * recentTokens} is only a lower bound on it ({@link Budget} guarantees {@code tokens >= sinkTokens +
 * recentTokens + 1}, so the window holds at least the current token).
 *
 * <p><b>Cadence.</b> Every step, before attention: when a single token waits (decode), the oldest
 * windowed token leaves before the new token's attention, so attention sees exactly the budget, as
 * in StreamingLLM. After a multi-token attend call (prefill chunks) the excess leaves in one batch.
 * Needs no attention scores. Keys are stored post-RoPE with their original positions (no position
 * shift; see the class comment of {@link io.kvcache4j.api.KvCache}).
 */
public final class StreamingLlmPolicy extends BudgetedPolicy {
    static final String NAME = "streaming";

    /**
     * StreamingLLM's configuration: the budget alone.
     *
     * @param budget tokens per (layer, KV head), sinks and recent window included; not a fraction
     */
    public record Config(Budget budget) {
        /** @throws IllegalArgumentException if {@code budget} is a fraction of the prompt */
        public Config {
            budget = tokenBudget(budget);
        }

        /** The configuration for {@code budget} (StreamingLLM has no other parameter). */
        public static Config defaults(Budget budget) {
            return new Config(budget);
        }
    }

    private final Config config;

    public StreamingLlmPolicy(Config config) {
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

    /** Registers {@code streaming} with {@link io.kvcache4j.api.EvictionPolicies}. */
    public static final class Provider implements EvictionPolicyProvider {
        @Override
        public String name() {
            return NAME;
        }

        @Override
        public String description() {
            return "StreamingLLM: attention sinks plus a sliding window of the most recent tokens";
        }

        @Override
        public StreamingLlmPolicy create(Budget budget) {
            return new StreamingLlmPolicy(Config.defaults(budget));
        }
    }

    static final class Tracker extends BaseTracker {
        private final int budget;
        private final int window;

        Tracker(CacheAccess cache, Budget budget) {
            super(cache, budget);
            this.budget = budget.tokens();
            this.window = this.budget - budget.sinkTokens();
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
