package io.kvcache4j.hybrid;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.store.PagedHeadStore;

/**
 * Configuration of HGCA storage ({@link SplitFactory#hgca}): per (layer, KV head) the first {@code
 * sinkTokens} and the newest {@code recentTokens} tokens stay in the fast tier and are attended
 * densely; of the older tokens in the slow tier each query head keeps its salient ones, those whose
 * logit is within {@code threshold} of that head's largest (weight at least {@code exp(−threshold)}
 * of the heaviest key's), at most {@code maxFraction} of them (the best first).
 *
 * @param sinkTokens leading tokens kept in the fast tier, {@code >= 0}
 * @param recentTokens newest tokens kept in the fast tier, {@code >= 0}
 * @param threshold logit margin below each head's maximum, {@code > 0} ({@code +∞}: every key)
 * @param maxFraction most slow-tier keys a head keeps, as a fraction of them, in {@code (0, 1]}
 * @param pageTokens tokens per page, as {@link PagedHeadStore#checkPageTokens}
 */
public record HgcaConfig(int sinkTokens, int recentTokens, float threshold, double maxFraction, int pageTokens) {
    public HgcaConfig {
        SplitFactory.checkWindow(sinkTokens, recentTokens);
        if (!(threshold > 0)) {
            throw new IllegalArgumentException("threshold must be in (0, Infinity], was " + threshold);
        }
        if (!(maxFraction > 0 && maxFraction <= 1)) {
            throw new IllegalArgumentException("maxFraction must be in (0, 1], was " + maxFraction);
        }
        PagedHeadStore.checkPageTokens(pageTokens);
    }

    /** 4 sinks, a recent window of 64, a margin of 10 (weights down to about 4.5e-5), at most a quarter. */
    public static HgcaConfig defaults() {
        return new HgcaConfig(Budget.DEFAULT_SINK_TOKENS, 64, 10f, 0.25, KvCacheBuilder.DEFAULT_PAGE_TOKENS);
    }

    /**
     * The fast tier sized by a {@link Budget} (resolved to tokens): the budget's sinks and the rest of
     * its {@code tokens()} as the recent window.
     *
     * @throws IllegalArgumentException for a fraction budget (resolve it against the prompt first)
     */
    public static HgcaConfig forBudget(Budget budget) {
        Budget b = budget.requireTokens();
        return defaults().withWindow(b.sinkTokens(), b.tokens() - b.sinkTokens());
    }

    /** Fast-tier tokens per (layer, KV head): {@code sinkTokens + recentTokens}. */
    public long fastTokens() {
        return (long) sinkTokens + recentTokens;
    }

    public HgcaConfig withWindow(int sinkTokens, int recentTokens) {
        return new HgcaConfig(sinkTokens, recentTokens, threshold, maxFraction, pageTokens);
    }

    public HgcaConfig withSparsity(float threshold, double maxFraction) {
        return new HgcaConfig(sinkTokens, recentTokens, threshold, maxFraction, pageTokens);
    }

    public HgcaConfig withPageTokens(int pageTokens) {
        return new HgcaConfig(sinkTokens, recentTokens, threshold, maxFraction, pageTokens);
    }
}
