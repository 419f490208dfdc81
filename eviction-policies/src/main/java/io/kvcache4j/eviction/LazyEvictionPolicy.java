package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicyProvider;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;

/**
 * LazyEviction: lagged, recurrence-aware eviction. Zhang et al., "LazyEviction: Lagged KV Eviction
 * with Attention Pattern Observation for Efficient Long Reasoning" (arXiv 2506.15969). The authors'
 * code (Halo-949/LazyEviction) could not be read; the rule below is our reading of the paper's three
 * parts, and its thresholds are ours.
 *
 * <p><b>Parameters</b> ({@link Config}): observation {@code window} W (default 32), {@code importance}
 * (default 1.0), plus the {@link Budget}.
 *
 * <p><b>Observation-window lagged eviction.</b> A head may exceed its budget by up to the window W:
 * nothing leaves until it holds {@code tokens + W} tokens, then the excess leaves in one batch, back
 * down to the budget. So a head holds at most {@code tokens + W − 1} tokens between attend calls,
 * and evictions happen once per W decode steps.
 *
 * <p><b>Recurrence interval tracking.</b> At each step a held token is <i>important</i> when the
 * softmax mass the query gives it (fused from the attention pass, mean over the GQA group) is at
 * least {@code importance} (default 1.0) times the uniform mass {@code 1/visibleTokens}. Per
 * token, in one {@code long} slot column: the last step {@code l} at which it was important (its own
 * position when it arrives) and its maximum recurrence interval {@code MRI}, the longest gap between
 * two successive important steps seen so far.
 *
 * <p><b>MRI-centric eviction.</b> At step {@code t} a token is overdue by {@code (t − l) − MRI}: a
 * token that came back every k steps has waited less than k since its last return and is not
 * overdue; a token that mattered once and never again is overdue by its age. Victims are the most
 * overdue tokens outside the sinks and the recent window (ties: lower slot first). Unlike H2O's
 * accumulated score, a token that recurs periodically survives however little mass it collected.
 */
public final class LazyEvictionPolicy extends BudgetedPolicy {
    static final String NAME = "lazy";

    /**
     * LazyEviction's configuration.
     *
     * @param budget tokens per (layer, KV head), sinks and recent window included; not a fraction
     * @param window observation window W, the decode steps between batch evictions, {@code >= 1}
     *     (default {@value #DEFAULT_WINDOW})
     * @param importance a token is important at a step when its softmax mass is at least this
     *     multiple of the uniform mass {@code 1/visibleTokens}; finite and {@code > 0} (default 1.0)
     */
    public record Config(Budget budget, int window, double importance) {
        /** Default observation window W: 32 steps. */
        public static final int DEFAULT_WINDOW = 32;
        /** Default importance threshold: the uniform mass. */
        public static final double DEFAULT_IMPORTANCE = 1.0;

        /** @throws IllegalArgumentException for a fraction budget or a value out of its range */
        public Config {
            budget = tokenBudget(budget);
            atLeast(NAME, "window", window, 1);
            if (!(importance > 0 && importance < Double.POSITIVE_INFINITY)) {
                throw new IllegalArgumentException(NAME + ": importance must be in (0, Infinity), was " + importance);
            }
        }

        /** The defaults for {@code budget}: window 32, importance 1.0. */
        public static Config defaults(Budget budget) {
            return new Config(budget, DEFAULT_WINDOW, DEFAULT_IMPORTANCE);
        }

        /** This configuration with observation window {@code window}. */
        public Config withWindow(int window) {
            return new Config(budget, window, importance);
        }

        /** This configuration with importance threshold {@code importance}. */
        public Config withImportance(double importance) {
            return new Config(budget, window, importance);
        }
    }

    private final Config config;

    public LazyEvictionPolicy(Config config) {
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
    public long maxRetainedTokens(ModelShape shape, int layer, int kvHead, int decodedTokens) {
        return super.maxRetainedTokens(shape, layer, kvHead, decodedTokens) + config.window() - 1;
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, config);
    }

    /** Registers {@code lazy} with {@link io.kvcache4j.api.EvictionPolicies}, at the defaults. */
    public static final class Provider implements EvictionPolicyProvider {
        @Override
        public String name() {
            return NAME;
        }

        @Override
        public String description() {
            return "LazyEviction: lagged batch eviction of tokens overdue by their recurrence interval";
        }

        @Override
        public LazyEvictionPolicy create(Budget budget) {
            return new LazyEvictionPolicy(Config.defaults(budget));
        }
    }

    static final class Tracker extends BaseTracker {
        /** {@code (lastImportantStep << 32) | maxRecurrenceInterval} per slot. */
        final int stateColumn;

        private final int budget;
        private final int window;
        private final float importance;
        private final VectorUtilSupport kernel;

        Tracker(CacheAccess cache, Config config) {
            super(cache, config.budget());
            this.budget = config.budget().tokens();
            this.window = config.window();
            this.importance = (float) config.importance();
            this.kernel = VectorizationProvider.getInstance().vectorUtil();
            this.stateColumn = addLongColumn();
        }

        static int lastImportant(long state) {
            return (int) (state >>> 32);
        }

        static int maxInterval(long state) {
            return (int) state;
        }

        @Override
        public ScoreAggregation scoreAggregation() {
            return ScoreAggregation.MEAN;
        }

        @Override
        void onAppend(int layer, int tokens) {
            for (HeadSlots h : heads[layer]) {
                long[] pos = h.longColumn(posColumn);
                long[] state = h.longColumn(stateColumn);
                for (int s = h.count() - tokens; s < h.count(); s++) {
                    state[s] = pos[s] << 32;
                }
            }
        }

        @Override
        public void onScores(int layer, int kvHead, int queryPosition, float[] mass, int slots) {
            // Whether a token is important is close to a coin flip, so a test per slot would be
            // mispredicted about every other slot: the kernel compares a vector of slots at once
            // and blends the updated states in.
            kernel.recurrences(
                    mass, slots, importance / slots, heads[layer][kvHead].longColumn(stateColumn), queryPosition);
        }

        @Override
        public void afterAttention(int layer, int lastQueryPosition) {
            int next = cache.nextPosition(layer);
            for (HeadSlots h : heads[layer]) {
                int count = h.count();
                if (count - budget < window) {
                    continue;
                }
                ensureScratch(count);
                long[] state = h.longColumn(stateColumn);
                long[] pos = h.longColumn(posColumn);
                int m = 0;
                for (int s = 0; s < count; s++) {
                    if (!isProtected(pos[s], next)) {
                        long st = state[s];
                        long overdue = (long) lastQueryPosition - (int) (st >>> 32) - (int) st;
                        int neg = (int) -Math.clamp(overdue, -Integer.MAX_VALUE, Integer.MAX_VALUE);
                        keys[m++] = Selection.key(neg, s);
                    }
                }
                evictSmallest(h, m, count - budget, false);
            }
        }
    }
}
