package io.kvcache4j.hybrid;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.store.PagedHeadStore;
import java.util.Objects;

/**
 * Configuration of RetrievalAttention storage ({@link SplitFactory#retrieval}): per (layer, KV head)
 * the first {@code sinkTokens} and the newest {@code recentTokens} tokens stay in the fast tier and are
 * attended whole; the rest live in the slow tier, of which each query attends the {@code topK} keys
 * its {@link TokenSelector} chooses.
 *
 * @param sinkTokens leading tokens kept in the fast tier, {@code >= 0}
 * @param recentTokens newest tokens kept in the fast tier, {@code >= 0}
 * @param topK slow-tier keys attended per query, {@code >= 0}
 * @param pageTokens tokens per page, as {@link PagedHeadStore#checkPageTokens}
 * @param selector the selector of each (layer, KV head)
 */
public record RetrievalConfig(
        int sinkTokens, int recentTokens, int topK, int pageTokens, TokenSelector.Factory selector) {
    public RetrievalConfig {
        SplitFactory.checkWindow(sinkTokens, recentTokens);
        if (topK < 0) {
            throw new IllegalArgumentException("topK must be in [0, " + Integer.MAX_VALUE + "], was " + topK);
        }
        PagedHeadStore.checkPageTokens(pageTokens);
        Objects.requireNonNull(selector, "selector");
    }

    /** 4 sinks, a recent window of 64, the top 128 keys by {@link FlatSelector}, default pages. */
    public static RetrievalConfig defaults() {
        return new RetrievalConfig(
                Budget.DEFAULT_SINK_TOKENS, 64, 128, KvCacheBuilder.DEFAULT_PAGE_TOKENS, FlatSelector.factory());
    }

    /**
     * The fast tier sized by a {@link Budget} (resolved to tokens): its {@code tokens()} per (layer, KV
     * head), the budget's sinks and the rest as the recent window; {@code topK} slow-tier keys per query
     * on top.
     *
     * @throws IllegalArgumentException for a fraction budget (resolve it against the prompt first)
     */
    public static RetrievalConfig forBudget(Budget budget, int topK) {
        Budget b = budget.requireTokens();
        return defaults()
                .withWindow(b.sinkTokens(), b.tokens() - b.sinkTokens())
                .withTopK(topK);
    }

    /** Fast-tier tokens per (layer, KV head): {@code sinkTokens + recentTokens}. */
    public long fastTokens() {
        return (long) sinkTokens + recentTokens;
    }

    public RetrievalConfig withWindow(int sinkTokens, int recentTokens) {
        return new RetrievalConfig(sinkTokens, recentTokens, topK, pageTokens, selector);
    }

    public RetrievalConfig withTopK(int topK) {
        return new RetrievalConfig(sinkTokens, recentTokens, topK, pageTokens, selector);
    }

    public RetrievalConfig withPageTokens(int pageTokens) {
        return new RetrievalConfig(sinkTokens, recentTokens, topK, pageTokens, selector);
    }

    public RetrievalConfig withSelector(TokenSelector.Factory selector) {
        return new RetrievalConfig(sinkTokens, recentTokens, topK, pageTokens, selector);
    }
}
