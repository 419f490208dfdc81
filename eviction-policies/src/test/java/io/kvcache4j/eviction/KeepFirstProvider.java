package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionPolicyProvider;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ScoreAggregation;

/**
 * A policy from outside this module's main code, registered through {@code
 * META-INF/services/io.kvcache4j.api.EvictionPolicyProvider} in the test resources, the way a third
 * party's jar would: it keeps the first {@code budget} tokens of every head and drops later ones.
 */
public final class KeepFirstProvider implements EvictionPolicyProvider {
    @Override
    public String name() {
        return "keep-first";
    }

    @Override
    public String description() {
        return "keeps the first tokens of every head (a test policy from outside the module)";
    }

    @Override
    public EvictionPolicy create(Budget budget) {
        int keep = budget.tokens();
        return new EvictionPolicy() {
            @Override
            public String name() {
                return "keep-first";
            }

            @Override
            public EvictionTracker bind(CacheAccess cache) {
                return new EvictionTracker() {
                    @Override
                    public ScoreAggregation scoreAggregation() {
                        return null;
                    }

                    @Override
                    public void afterAttention(int layer, int lastQueryPosition) {
                        for (int h = 0; h < cache.shape().kvHeads(); h++) {
                            HeadSlots head = cache.head(layer, h);
                            while (head.count() > keep) {
                                head.evict(head.count() - 1);
                            }
                        }
                    }
                };
            }
        };
    }
}
