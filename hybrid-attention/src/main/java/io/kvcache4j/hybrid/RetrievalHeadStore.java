package io.kvcache4j.hybrid;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.SlotSelection;

/**
 * RetrievalAttention (Liu et al., "RetrievalAttention: Accelerating Long-Context LLM Inference via
 * Vector Retrieval", arXiv 2409.10516) for one (layer, KV head): sinks and the recent window attended
 * whole from the fast tier; of the slow tier, the {@code topK} keys that the {@link TokenSelector}
 * picks for the query (one search per KV head for the whole GQA group) attended exactly, as a separate
 * partial merged by log-sum-exp. With an exact selector and {@code topK} at least the slow-tier size,
 * the output equals full attention (up to float rounding of the merge).
 */
final class RetrievalHeadStore extends SplitHeadStore {
    private final TokenSelector selector;
    private final int topK;
    private final SlotSelection selected = new SlotSelection();
    private int[] rows = new int[0];
    private long slowAttended;

    RetrievalHeadStore(TierPages fast, SplitRows slow, RetrievalConfig config, TokenSelector selector, int group) {
        super(fast, slow, config.sinkTokens(), config.recentTokens(), group);
        this.selector = selector;
        this.topK = config.topK();
    }

    TokenSelector selector() {
        return selector;
    }

    /** Slow-tier keys attended so far. */
    long slowAttended() {
        return slowAttended;
    }

    @Override
    void slowRowsChanged(int firstChanged) {
        selector.rowsChanged(slow, Math.max(0, firstChanged));
    }

    @Override
    int attendSlow(GroupAttention state, int n) {
        int want = Math.min(topK, n);
        if (rows.length < want) {
            rows = new int[Math.max(want, rows.length * 2)];
        }
        int got = selector.select(slow, n, state.queries(), group, topK, rows);
        slowState.begin(state.queries(), 0, 1f);
        slow.attend(slowState, selected.list(rows, got));
        slowState.finish(slowPartial, 0);
        slowAttended += got;
        return got;
    }
}
