package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicyProvider;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import java.util.Objects;

/**
 * HashEvict (first published as LSH-E): pre-attention eviction by locality-sensitive hashing. Liu,
 * Rabbani et al., "HashEvict: A Pre-Attention KV Cache Eviction Strategy using Locality-Sensitive
 * Hashing" (arXiv 2412.16187). No public code exists; this follows the paper's description.
 *
 * <p><b>Parameters</b> ({@link Config}): signature {@code bits} (default 32), projection {@code
 * seed}, {@code scoring} (default {@link HashScoring#ACCUMULATED}), plus the {@link Budget}.
 *
 * <p><b>Signatures.</b> Each (layer, KV head) has its own Gaussian projection of {@code bits}
 * planes ({@code b ≪ headDim}, default 32; seeded by {@code seed}, so runs are reproducible).
 * Every stored key gets a SimHash signature, one {@code long} in a slot column that moves with the
 * slot; every query head of the group is hashed the same way before its attention.
 *
 * <p><b>Score.</b> Hamming distance between signatures estimates the query–key angle ({@code
 * E[hamming] = b·θ/π}), so a large distance predicts a low {@code q·k} and low attention. Each held
 * token keeps an attention-loss counter in a second {@code long} column: the Hamming distances to
 * every query that has seen it, summed over the query heads of the group. {@code scoring}
 * picks the eviction score: {@code ACCUMULATED} (default) is the counter itself, our reading of the
 * paper's accumulated attention loss (the method section could not be checked word for word);
 * since every query adds to it, it also ages tokens out. {@code MEAN} divides it by the queries that have seen
 * the token (age-neutral: a key close to recurring queries stays indefinitely), {@code LAST} ranks
 * by the current query alone, the abstract's literal rule.
 *
 * <p><b>Rule.</b> Before each decode step's attention, once the head is over budget, the new token's
 * key and value replace the slot with the highest attention loss outside the sinks and recent
 * window (an O(1) swap into that slot): attention then runs over exactly the budget's {@code
 * tokens}, and no attention scores are needed. After a prefill chunk, the excess leaves in one batch
 * by the same score. Sinks and the recent window come from the {@link Budget} (defaults 4, and a
 * quarter of the budget up to 32); the paper leaves their protection to the implementation.
 */
public final class HashEvictPolicy extends BudgetedPolicy {
    static final String NAME = "hashevict";

    /** How HashEvict turns Hamming distances into a token's eviction score. */
    public enum HashScoring {
        /**
         * The attention-loss counter: Hamming distances to every query that has seen the token,
         * summed. Older tokens have met more queries, so this also ages tokens out.
         */
        ACCUMULATED,
        /** The same sum divided by the queries that have seen the token: age-neutral. */
        MEAN,
        /** The current query's Hamming distance only. */
        LAST
    }

    /**
     * HashEvict's configuration.
     *
     * @param budget tokens per (layer, KV head), sinks and recent window included; not a fraction
     * @param bits SimHash signature bits per token per KV head, in [1, 64] (default {@value
     *     #DEFAULT_BITS})
     * @param seed seed of the Gaussian projections (one per layer and KV head)
     * @param scoring how Hamming distances become a token's score (default {@link
     *     HashScoring#ACCUMULATED})
     */
    public record Config(Budget budget, int bits, long seed, HashScoring scoring) {
        /** Default signature bits: 32. */
        public static final int DEFAULT_BITS = 32;
        /** Default projection seed. */
        public static final long DEFAULT_SEED = 0x243F6A8885A308D3L;

        /** @throws IllegalArgumentException for a fraction budget or a value out of its range */
        public Config {
            budget = tokenBudget(budget);
            if (bits < 1 || bits > 64) {
                throw new IllegalArgumentException(NAME + ": bits must be in [1, 64], was " + bits);
            }
            Objects.requireNonNull(scoring, "scoring");
        }

        /** The defaults for {@code budget}: 32 bits, the default seed, accumulated scoring. */
        public static Config defaults(Budget budget) {
            return new Config(budget, DEFAULT_BITS, DEFAULT_SEED, HashScoring.ACCUMULATED);
        }

        /** This configuration with {@code bits} signature bits. */
        public Config withBits(int bits) {
            return new Config(budget, bits, seed, scoring);
        }

        /** This configuration with projection seed {@code seed}. */
        public Config withSeed(long seed) {
            return new Config(budget, bits, seed, scoring);
        }

        /** This configuration with scoring {@code scoring}. */
        public Config withScoring(HashScoring scoring) {
            return new Config(budget, bits, seed, scoring);
        }
    }

    private final Config config;

    public HashEvictPolicy(Config config) {
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
        return new Tracker(cache, config);
    }

    /** Registers {@code hashevict} with {@link io.kvcache4j.api.EvictionPolicies}, at the defaults. */
    public static final class Provider implements EvictionPolicyProvider {
        @Override
        public String name() {
            return NAME;
        }

        @Override
        public String description() {
            return "HashEvict: SimHash estimates of attention, the new token replaces the worst before attention";
        }

        @Override
        public HashEvictPolicy create(Budget budget) {
            return new HashEvictPolicy(Config.defaults(budget));
        }
    }

    static final class Tracker extends BaseTracker {
        /** Keys signed per kernel call after an append. */
        static final int KEY_BATCH = 16;

        final int sigColumn;
        final int lossColumn;
        final SimHash[][] hashes;
        private final int budget;
        private final HashScoring scoring;
        private final VectorUtilSupport kernel;
        /** Scratch: the keys of the tokens just appended, token-major. */
        private float[] keyBuf;

        private final int bits;
        private final long[] querySigs;
        /** Scratch: the query signatures packed two to a word when they fit in 32 bits. */
        private final long[] queryWords;

        Tracker(CacheAccess cache, Config config) {
            super(cache, config.budget());
            this.budget = config.budget().tokens();
            this.scoring = config.scoring();
            this.kernel = VectorizationProvider.getInstance().vectorUtil();
            this.sigColumn = addLongColumn();
            this.lossColumn = addLongColumn();
            this.hashes = new SimHash[shape.layers()][shape.kvHeads()];
            for (int l = 0; l < shape.layers(); l++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    hashes[l][h] = new SimHash(config.bits(), shape.headDim(), SimHash.seedFor(config.seed(), l, h));
                }
            }
            this.keyBuf = new float[KEY_BATCH * shape.headDim()];
            this.bits = config.bits();
            this.querySigs = new long[shape.groupSize()];
            this.queryWords = new long[shape.groupSize()];
        }

        @Override
        public ScoreAggregation scoreAggregation() {
            return null;
        }

        @Override
        void onAppend(int layer, int tokens) {
            int d = shape.headDim();
            for (int h = 0; h < shape.kvHeads(); h++) {
                HeadSlots head = heads[layer][h];
                long[] sig = head.longColumn(sigColumn);
                // up to KEY_BATCH keys per kernel call, read into a scratch of bounded size
                for (int first = head.count() - tokens; first < head.count(); first += KEY_BATCH) {
                    int n = Math.min(KEY_BATCH, head.count() - first);
                    for (int t = 0; t < n; t++) {
                        head.readKey(first + t, keyBuf, t * d);
                    }
                    hashes[layer][h].signatures(kernel, keyBuf, 0, d, n, sig, first);
                }
            }
        }

        @Override
        public void beforeAttention(int layer, int queryPosition, float[] queries, int offset) {
            int pending = cache.pendingTokens(layer);
            int next = cache.nextPosition(layer);
            int group = shape.groupSize();
            int d = shape.headDim();
            for (int h = 0; h < shape.kvHeads(); h++) {
                HeadSlots head = heads[layer][h];
                hashes[layer][h].signatures(kernel, queries, offset + h * group * d, d, group, querySigs, 0);
                int count = head.count();
                int visible = count - (pending - 1);
                long[] sig = head.longColumn(sigColumn);
                long[] loss = head.longColumn(lossColumn);
                long[] pos = head.longColumn(posColumn);
                boolean replace = pending == 1 && count > budget;
                if (replace && scoring != HashScoring.MEAN && head.granularity() == 1) {
                    // scores and the worst unprotected slot in one kernel pass
                    int worst = scoreVisible(sig, loss, visible, pos, count - 1, next);
                    if (worst >= 0) {
                        head.evict(worst);
                    }
                    continue;
                }
                scoreVisible(sig, loss, visible, pos, 0, next);
                if (replace) {
                    replaceWorst(head, loss, count - 1, next, queryPosition);
                }
            }
        }

        /**
         * Adds (or, for {@code LAST}, sets) each of the {@code visible} slots' Hamming distances to the
         * group's query signatures, and returns the slot {@link #replaceWorst} would evict (the highest
         * loss among the unprotected of the first {@code candidates} slots, the lowest slot on ties;
         * −1: none; pass 0 candidates for the scores alone), in one pass of the kernel's {@link
         * VectorUtilSupport#hammingStep}. Signatures of at most 32 bits are compared two queries at a
         * time: {@code popcount((q0 | q1 << 32) ^ (k | k << 32)) = popcount(q0 ^ k) + popcount(q1 ^
         * k)}, the same integers with half the popcounts. The slot is not {@code MEAN}'s, whose score
         * divides by each token's age.
         */
        private int scoreVisible(long[] sig, long[] loss, int visible, long[] pos, int candidates, int next) {
            long[] q = querySigs;
            long[] words = queryWords;
            int group = q.length;
            int pairs = bits <= 32 ? group / 2 : 0;
            for (int w = 0; w < pairs; w++) {
                words[w] = q[2 * w] | q[2 * w + 1] << 32;
            }
            int singles = group - 2 * pairs;
            for (int j = 0; j < singles; j++) {
                words[pairs + j] = q[2 * pairs + j];
            }
            return kernel.hammingStep(
                    sig,
                    loss,
                    visible,
                    words,
                    pairs,
                    singles,
                    scoring != HashScoring.LAST,
                    pos,
                    candidates,
                    sinks,
                    (long) next - recent);
        }

        /** Evicts the highest-scoring unprotected slot among {@code [0, candidates)}. */
        private void replaceWorst(HeadSlots head, long[] loss, int candidates, int next, int queryPosition) {
            long[] pos = head.longColumn(posColumn);
            int worst = -1;
            if (scoring == HashScoring.MEAN) {
                float max = Float.NEGATIVE_INFINITY;
                for (int s = 0; s < candidates; s++) {
                    float mean = (float) loss[s] / (queryPosition - pos[s] + 1);
                    if (mean > max && !isProtected(pos[s], next)) {
                        max = mean;
                        worst = s;
                    }
                }
            } else {
                long max = Long.MIN_VALUE;
                for (int s = 0; s < candidates; s++) {
                    if (loss[s] > max && !isProtected(pos[s], next)) {
                        max = loss[s];
                        worst = s;
                    }
                }
            }
            if (worst < 0) {
                return;
            }
            if (head.granularity() == 1) {
                head.evict(worst);
                return;
            }
            // A store of coarse granularity: whole groups, ranked like afterAttention does.
            ensureScratch(candidates);
            int m = 0;
            for (int s = 0; s < candidates; s++) {
                if (!isProtected(pos[s], next)) {
                    keys[m++] = Selection.key(Selection.sortable(-score(loss[s], pos[s], queryPosition)), s);
                }
            }
            evictSmallest(head, m, head.count() - budget, true);
        }

        /** The eviction score of a slot; higher leaves first. */
        private float score(long loss, long position, int queryPosition) {
            return scoring == HashScoring.MEAN ? (float) loss / (queryPosition - position + 1) : (float) loss;
        }

        @Override
        public void afterAttention(int layer, int lastQueryPosition) {
            int next = cache.nextPosition(layer);
            for (HeadSlots head : heads[layer]) {
                int count = head.count();
                if (count <= budget) {
                    continue;
                }
                ensureScratch(count);
                long[] loss = head.longColumn(lossColumn);
                long[] pos = head.longColumn(posColumn);
                int m = 0;
                for (int s = 0; s < count; s++) {
                    if (!isProtected(pos[s], next)) {
                        float sc = score(loss[s], pos[s], lastQueryPosition);
                        keys[m++] = Selection.key(Selection.sortable(-sc), s);
                    }
                }
                evictSmallest(head, m, count - budget, false);
            }
        }

        @Override
        public long stateBytes() {
            long bytes = super.stateBytes() + 4L * keyBuf.length + 8L * querySigs.length + 8L * queryWords.length;
            for (SimHash[] layer : hashes) {
                for (SimHash h : layer) {
                    bytes += h.bytes();
                }
            }
            return bytes;
        }
    }
}
