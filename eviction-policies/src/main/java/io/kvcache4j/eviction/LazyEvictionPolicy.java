package io.kvcache4j.eviction;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;

/**
 * LazyEviction: lagged, recurrence-aware eviction. Zhang et al., "LazyEviction: Lagged KV Eviction
 * with Attention Pattern Observation for Efficient Long Reasoning" (arXiv 2506.15969). The authors'
 * code (Halo-949/LazyEviction) could not be read; the rule below is our reading of the paper's three
 * parts, and its thresholds are ours.
 *
 * <p><b>Observation-window lagged eviction.</b> A head may exceed its budget by up to the window
 * {@code lazyWindow} W (default 32): nothing leaves until it holds {@code budgetTokens + W} tokens,
 * then the excess leaves in one batch, back down to the budget. So a head holds at most {@code
 * budgetTokens + W − 1} tokens between attend calls, and evictions happen once per W decode steps.
 *
 * <p><b>Recurrence interval tracking.</b> At each step a held token is <i>important</i> when the
 * softmax mass the query gives it (fused from the attention pass, mean over the GQA group) is at
 * least {@code lazyImportance} (default 1.0) times the uniform mass {@code 1/visibleTokens}. Per
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

    public LazyEvictionPolicy(PolicyConfig config) {
        super(config);
    }

    @Override
    public String name() {
        return "lazy";
    }

    @Override
    public long maxRetainedTokens(ModelShape shape, int layer, int kvHead, int decodedTokens) {
        return super.maxRetainedTokens(shape, layer, kvHead, decodedTokens) + config.lazyWindow() - 1;
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, config);
    }

    static final class Tracker extends BaseTracker {
        /** {@code (lastImportantStep << 32) | maxRecurrenceInterval} per slot. */
        final int stateColumn;

        private final int budget;
        private final int window;
        private final float importance;

        Tracker(CacheAccess cache, PolicyConfig config) {
            super(cache, config);
            this.budget = config.budgetTokens();
            this.window = config.lazyWindow();
            this.importance = (float) config.lazyImportance();
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
            long[] state = heads[layer][kvHead].longColumn(stateColumn);
            float threshold = importance / slots;
            for (int s = 0; s < slots; s++) {
                if (mass[s] >= threshold) {
                    long st = state[s];
                    int interval = queryPosition - (int) (st >>> 32);
                    int mri = Math.max((int) st, interval);
                    state[s] = ((long) queryPosition << 32) | (mri & 0xFFFFFFFFL);
                }
            }
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
