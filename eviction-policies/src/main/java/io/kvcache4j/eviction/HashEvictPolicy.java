package io.kvcache4j.eviction;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;

/**
 * HashEvict (first published as LSH-E): pre-attention eviction by locality-sensitive hashing. Liu,
 * Rabbani et al., "HashEvict: A Pre-Attention KV Cache Eviction Strategy using Locality-Sensitive
 * Hashing" (arXiv 2412.16187). No public code exists; this follows the paper's description.
 *
 * <p><b>Signatures.</b> Each (layer, KV head) has its own Gaussian projection of {@code hashBits}
 * planes ({@code b ≪ headDim}, default 32; seeded by {@code hashSeed}, so runs are reproducible).
 * Every stored key gets a SimHash signature, one {@code long} in a slot column that moves with the
 * slot; every query head of the group is hashed the same way before its attention.
 *
 * <p><b>Score.</b> Hamming distance between signatures estimates the query–key angle ({@code
 * E[hamming] = b·θ/π}), so a large distance predicts a low {@code q·k} and low attention. Each held
 * token keeps an attention-loss counter in a second {@code long} column: the Hamming distances to
 * every query that has seen it, summed over the query heads of the group. {@code hashScoring}
 * picks the eviction score: {@code ACCUMULATED} (default) is the counter itself, our reading of the
 * paper's accumulated attention loss (the method section could not be checked word for word);
 * since every query adds to it, it also ages tokens out. {@code MEAN} divides it by the queries that have seen
 * the token (age-neutral: a key close to recurring queries stays indefinitely), {@code LAST} ranks
 * by the current query alone, the abstract's literal rule.
 *
 * <p><b>Rule.</b> Before each decode step's attention, once the head is over budget, the new token's
 * key and value replace the slot with the highest attention loss outside the sinks and recent
 * window (an O(1) swap into that slot): attention then runs over exactly {@code budgetTokens}
 * tokens, and no attention scores are needed. After a prefill chunk, the excess leaves in one batch
 * by the same score. Sinks and the recent window are configuration (defaults 4 and 32); the paper
 * leaves their protection to the implementation.
 */
public final class HashEvictPolicy extends BudgetedPolicy {

    public HashEvictPolicy(PolicyConfig config) {
        super(config);
    }

    @Override
    public String name() {
        return "hashevict";
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, config);
    }

    static final class Tracker extends BaseTracker {
        final int sigColumn;
        final int lossColumn;
        final SimHash[][] hashes;
        private final int budget;
        private final PolicyConfig.HashScoring scoring;
        private final VectorUtilSupport kernel;
        private final float[] keyBuf;
        private final long[] querySigs;

        Tracker(CacheAccess cache, PolicyConfig config) {
            super(cache, config);
            this.budget = config.budgetTokens();
            this.scoring = config.hashScoring();
            this.kernel = VectorizationProvider.getInstance().vectorUtil();
            this.sigColumn = addLongColumn();
            this.lossColumn = addLongColumn();
            this.hashes = new SimHash[shape.layers()][shape.kvHeads()];
            for (int l = 0; l < shape.layers(); l++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    hashes[l][h] =
                            new SimHash(config.hashBits(), shape.headDim(), SimHash.seedFor(config.hashSeed(), l, h));
                }
            }
            this.keyBuf = new float[shape.headDim()];
            this.querySigs = new long[shape.groupSize()];
        }

        @Override
        public ScoreAggregation scoreAggregation() {
            return null;
        }

        @Override
        void onAppend(int layer, int tokens) {
            for (int h = 0; h < shape.kvHeads(); h++) {
                HeadSlots head = heads[layer][h];
                long[] sig = head.longColumn(sigColumn);
                SimHash hash = hashes[layer][h];
                for (int s = head.count() - tokens; s < head.count(); s++) {
                    head.readKey(s, keyBuf, 0);
                    sig[s] = hash.signature(kernel, keyBuf, 0);
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
                SimHash hash = hashes[layer][h];
                for (int j = 0; j < group; j++) {
                    querySigs[j] = hash.signature(kernel, queries, offset + (h * group + j) * d);
                }
                int count = head.count();
                int visible = count - (pending - 1);
                long[] sig = head.longColumn(sigColumn);
                long[] loss = head.longColumn(lossColumn);
                scoreVisible(sig, loss, visible);
                if (pending == 1 && count > budget) {
                    replaceWorst(head, loss, count - 1, next, queryPosition);
                }
            }
        }

        private void scoreVisible(long[] sig, long[] loss, int visible) {
            int group = querySigs.length;
            boolean accumulate = scoring != PolicyConfig.HashScoring.LAST;
            if (group == 1) {
                long q = querySigs[0];
                if (accumulate) {
                    for (int s = 0; s < visible; s++) {
                        loss[s] += Long.bitCount(q ^ sig[s]);
                    }
                } else {
                    for (int s = 0; s < visible; s++) {
                        loss[s] = Long.bitCount(q ^ sig[s]);
                    }
                }
                return;
            }
            for (int s = 0; s < visible; s++) {
                long k = sig[s];
                int hd = 0;
                for (int j = 0; j < group; j++) {
                    hd += Long.bitCount(querySigs[j] ^ k);
                }
                loss[s] = accumulate ? loss[s] + hd : hd;
            }
        }

        /** Evicts the highest-scoring unprotected slot among {@code [0, candidates)}. */
        private void replaceWorst(HeadSlots head, long[] loss, int candidates, int next, int queryPosition) {
            long[] pos = head.longColumn(posColumn);
            int worst = -1;
            if (scoring == PolicyConfig.HashScoring.MEAN) {
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
            return scoring == PolicyConfig.HashScoring.MEAN
                    ? (float) loss / (queryPosition - position + 1)
                    : (float) loss;
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
            long bytes = super.stateBytes() + 4L * keyBuf.length + 8L * querySigs.length;
            for (SimHash[] layer : hashes) {
                for (SimHash h : layer) {
                    bytes += h.bytes();
                }
            }
            return bytes;
        }
    }
}
