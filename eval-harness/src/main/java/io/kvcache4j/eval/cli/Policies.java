package io.kvcache4j.eval.cli;

import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.eval.niah.PolicyFactory;
import io.kvcache4j.eviction.EvictionPolicies;
import io.kvcache4j.eviction.PolicyConfig;
import java.util.List;

/**
 * The policies the command line offers, configured from one budget: sinks of 4 tokens, a recent
 * window (and SnapKV observation window) of a quarter of the budget but at most 32 tokens, the rest
 * of the budget for the tokens each policy selects. Every other parameter keeps its paper default
 * (see {@link PolicyConfig}).
 */
final class Policies implements PolicyFactory {
    @Override
    public List<String> names() {
        return EvictionPolicies.names();
    }

    @Override
    public EvictionPolicy create(String name, int budgetTokens, int promptTokens, ModelShape shape) {
        if (!names().contains(name)) {
            throw new IllegalArgumentException("unknown policy '" + name + "'; available: " + names());
        }
        return EvictionPolicies.create(name, config(budgetTokens));
    }

    static PolicyConfig config(int budgetTokens) {
        int recent = Math.max(1, Math.min(PolicyConfig.DEFAULT_RECENT_TOKENS, budgetTokens / 4));
        int sinks = Math.min(PolicyConfig.DEFAULT_SINK_TOKENS, Math.max(0, budgetTokens - recent - 1));
        return PolicyConfig.builder()
                .budgetTokens(budgetTokens)
                .sinkTokens(sinks)
                .recentTokens(recent)
                .snapKvWindow(recent)
                .build();
    }
}
