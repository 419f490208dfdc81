package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicyProvider;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import java.util.Objects;

/**
 * SnapKV: the last prompt queries vote for the prompt tokens worth keeping. Li et al., "SnapKV: LLM
 * Knows What You are Looking for Before Generation", NeurIPS 2024 (arXiv 2404.14469); defaults from
 * the configs of FasterDecoding/SnapKV, GQA handling as in NVIDIA/kvpress {@code snapkv_press.py}.
 *
 * <p><b>Parameters</b> ({@link Config}). Observation {@code window} (default: the budget's recent
 * window, which is 32 for budgets of 128 tokens and more, the last 32 prompt
 * queries; kvpress uses 64), pooling {@code kernel} (default 7; kvpress 5), {@code pooling} (default
 * max; kvpress avg), plus the {@link Budget}: tokens, sinks and recent window. The budget must hold
 * the sinks and {@code max(recentTokens, window)} tokens.
 *
 * <p><b>Rule.</b> Once, at {@link io.kvcache4j.api.KvCache#endPrefill()}, per layer and KV head:
 * every window query's causal softmax over the prompt is computed against the stored keys ({@link
 * CacheAccess#attentionMass}, mean over the query heads of the GQA group, as kvpress does); the
 * masses are averaged over the window, then pooled along the key axis over the tokens before the
 * window (avg pooling counts the zero padding, as {@code avg_pool1d}). Kept: the sinks, the last
 * {@code max(recentTokens, window)} tokens (the window itself is always kept) and the top-scoring
 * rest up to the budget's {@code tokens}; the others leave at once, order preserved. With max pooling the
 * pool follows the group mean (the original pools each head of an MHA model).
 *
 * <p><b>Cost.</b> During the prompt the queries are saved in {@code beforeAttention} in a ring
 * preallocated at bind time ({@code layers × window × queryHeads × headDim} floats; one array copy
 * per query); after the first {@code endPrefill} nothing is saved and decode steps cost nothing.
 * Decode tokens are not compressed: a head holds at most {@code tokens + decodedTokens}. Only
 * the first {@code endPrefill} compresses (one prompt per cache).
 */
public final class SnapKvPolicy extends BudgetedPolicy {
    static final String NAME = "snapkv";

    /** How SnapKV smooths window scores along the key axis. */
    public enum Pooling {
        /** Average over the kernel (zero padding counted, like {@code avg_pool1d}). */
        AVG,
        /** Maximum over the kernel. */
        MAX
    }

    /**
     * SnapKV's configuration.
     *
     * @param budget tokens per (layer, KV head), sinks and recent window included; not a fraction
     * @param window observation window: the last prompt queries that vote, {@code >= 1} (default
     *     the budget's recent window, at least 1; {@value #DEFAULT_WINDOW} at the default window of a
     *     budget of 128 tokens or more)
     * @param kernel pooling kernel along the key axis, odd and {@code >= 1} (default {@value
     *     #DEFAULT_KERNEL})
     * @param pooling pooling kind (default {@link Pooling#MAX})
     */
    public record Config(Budget budget, int window, int kernel, Pooling pooling) {
        /** Default observation window: 32 queries (the configs of FasterDecoding/SnapKV). */
        public static final int DEFAULT_WINDOW = 32;
        /** Default pooling kernel: 7 (the configs of FasterDecoding/SnapKV). */
        public static final int DEFAULT_KERNEL = 7;

        /** @throws IllegalArgumentException for a fraction budget or a value out of its range */
        public Config {
            budget = tokenBudget(budget);
            atLeast(NAME, "window", window, 1);
            if (kernel < 1 || kernel % 2 == 0) {
                throw new IllegalArgumentException(
                        NAME + ": kernel must be odd and in [1, " + Integer.MAX_VALUE + "], was " + kernel);
            }
            Objects.requireNonNull(pooling, "pooling");
        }

        /** The defaults for {@code budget}: window = its recent window, kernel 7, max pooling. */
        public static Config defaults(Budget budget) {
            // The recent window is the observation window: SnapKV always keeps its window, so a
            // smaller budget observes with fewer queries instead of being rejected.
            int window = Math.max(1, tokenBudget(budget).recentTokens());
            return new Config(budget, window, DEFAULT_KERNEL, Pooling.MAX);
        }

        /** This configuration with observation window {@code window}. */
        public Config withWindow(int window) {
            return new Config(budget, window, kernel, pooling);
        }

        /** This configuration with pooling kernel {@code kernel}. */
        public Config withKernel(int kernel) {
            return new Config(budget, window, kernel, pooling);
        }

        /** This configuration with pooling {@code pooling}. */
        public Config withPooling(Pooling pooling) {
            return new Config(budget, window, kernel, pooling);
        }

        /** Newest tokens kept whatever their score: the recent window or the observation window. */
        int keptTail() {
            return Math.max(budget.recentTokens(), window);
        }
    }

    private final Config config;

    /**
     * @throws IllegalArgumentException if the budget cannot hold the sinks and {@code
     *     max(recentTokens, window)} tokens
     */
    public SnapKvPolicy(Config config) {
        super(config.budget());
        this.config = config;
        long fixed = (long) budget.sinkTokens() + config.keptTail();
        if (budget.tokens() < fixed) {
            throw new IllegalArgumentException("snapkv: budget of " + budget.tokens() + " tokens must be in ["
                    + fixed + ", " + Integer.MAX_VALUE + "]: it has to hold sinkTokens " + budget.sinkTokens()
                    + " + max(recentTokens " + budget.recentTokens() + ", window " + config.window() + ")");
        }
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
    public long maxRetainedTokens(ModelShape shape, int layer, int kvHead, int decodedTokens) {
        return super.maxRetainedTokens(shape, layer, kvHead, decodedTokens) + decodedTokens;
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, config);
    }

    /** Registers {@code snapkv} with {@link io.kvcache4j.api.EvictionPolicies}, at the published defaults. */
    public static final class Provider implements EvictionPolicyProvider {
        @Override
        public String name() {
            return NAME;
        }

        @Override
        public String description() {
            return "SnapKV: the last prompt queries vote for the prompt tokens to keep, once after prefill";
        }

        @Override
        public SnapKvPolicy create(Budget budget) {
            return new SnapKvPolicy(Config.defaults(budget));
        }
    }

    static final class Tracker extends BaseTracker {
        private final int budget;
        private final int window;
        private final int tail;
        private final int kernel;
        private final Pooling pooling;
        private final QueryWindow queries;
        private boolean prefillDone;
        private float[] mass = new float[0];
        private float[] score = new float[0];
        private float[] pooled = new float[0];

        Tracker(CacheAccess cache, Config config) {
            super(cache, config.budget());
            this.budget = config.budget().tokens();
            this.window = config.window();
            this.tail = config.keptTail();
            this.kernel = config.kernel();
            this.pooling = config.pooling();
            this.queries = new QueryWindow(shape.layers(), window, shape.queryRowFloats());
        }

        @Override
        public ScoreAggregation scoreAggregation() {
            return null;
        }

        @Override
        public void beforeAttention(int layer, int queryPosition, float[] q, int offset) {
            if (!prefillDone) {
                queries.save(layer, queryPosition, q, offset);
            }
        }

        @Override
        public void endPrefill() {
            if (prefillDone) {
                return;
            }
            prefillDone = true;
            for (int l = 0; l < shape.layers(); l++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    compress(l, h);
                }
            }
        }

        private void compress(int layer, int kvHead) {
            HeadSlots head = heads[layer][kvHead];
            int count = head.count();
            if (count <= budget) {
                return;
            }
            int next = cache.nextPosition(layer);
            int obs = queries.available(layer);
            if (mass.length < count) {
                mass = new float[count];
                score = new float[count];
                pooled = new float[count];
            }
            ensureScratch(count);
            long[] pos = head.longColumn(posColumn);
            java.util.Arrays.fill(score, 0, count, 0f);
            int group = shape.groupSize();
            int headOffset = kvHead * group * shape.headDim();
            float[] rows = queries.rows(layer);
            for (int i = 0; i < obs; i++) {
                int visible = countAtOrBefore(pos, count, queries.position(layer, obs, i));
                cache.attentionMass(
                        layer,
                        kvHead,
                        rows,
                        queries.offset(layer, obs, i) + headOffset,
                        visible,
                        ScoreAggregation.MEAN,
                        mass);
                for (int s = 0; s < visible; s++) {
                    score[s] += mass[s];
                }
            }
            // Pool over the tokens before the observation window (slots are in position order).
            int prefix = countAtOrBefore(pos, count, (long) next - obs - 1);
            pool(score, pooled, prefix);
            int m = 0;
            long tailStart = (long) next - tail;
            for (int s = 0; s < prefix; s++) {
                long p = pos[s];
                if (p >= sinks && p < tailStart) {
                    keys[m++] = Selection.key(Selection.sortable(pooled[s]), s);
                }
            }
            evictSmallest(head, m, count - budget, true);
        }

        private void pool(float[] in, float[] out, int n) {
            int half = kernel / 2;
            for (int s = 0; s < n; s++) {
                int from = Math.max(0, s - half);
                int to = Math.min(n, s + half + 1);
                if (pooling == Pooling.MAX) {
                    float v = Float.NEGATIVE_INFINITY;
                    for (int j = from; j < to; j++) {
                        v = Math.max(v, in[j]);
                    }
                    out[s] = v;
                } else {
                    float sum = 0;
                    for (int j = from; j < to; j++) {
                        sum += in[j];
                    }
                    out[s] = sum / kernel;
                }
            }
        }

        /** Slots whose position is at most {@code position} (positions ascend with the slot). */
        private static int countAtOrBefore(long[] pos, int count, long position) {
            int lo = 0;
            int hi = count;
            while (lo < hi) {
                int mid = (lo + hi) >>> 1;
                if (pos[mid] <= position) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            return lo;
        }

        @Override
        public long stateBytes() {
            return super.stateBytes() + queries.bytes() + 12L * mass.length;
        }
    }
}
