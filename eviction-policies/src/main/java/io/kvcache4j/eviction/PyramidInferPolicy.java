package io.kvcache4j.eviction;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import java.util.Arrays;

/**
 * PyramidInfer: layer-wise decreasing retention scored by the recent queries. Yang et al.,
 * "PyramidInfer: Pyramid KV Cache Compression for High-throughput LLM Inference", ACL Findings 2024
 * (arXiv 2405.12532); schedule, weights and generation stage follow {@code
 * models/modeling_llama_pyramidinfer.py} and {@code configs/llama3_8b.json} of mutonix/pyramidinfer.
 * Dropping hidden states (which shrinks the prefill compute of deeper layers) is the engine's
 * business; this policy only decides which KV entries each layer keeps.
 *
 * <p><b>Layer schedule.</b> The paper keeps {@code r_l = (1−ρ)·(cos(π·l/L)+1)/2 + ρ} of the context
 * at layer {@code l} (ρ = {@code pyramidPrefillDecay}, default 0.9), and because it drops the
 * hidden states the reduction compounds: layer {@code l}'s KV holds {@code s_l = Π_{j<l} r_j} of the
 * context (1.0 at layers 0 and 1, about 0.2 at layer 31 of 32). Here {@code budgetTokens} is the
 * mean over layers: the context part {@code E = budgetTokens − sinkTokens − recentTokens} is split
 * as {@code round(E·L·s_l / Σ s)}, so the whole cache holds what a uniform budget would, and deeper
 * layers hold fewer tokens ({@link #budgetTokens(ModelShape, int, int)}).
 *
 * <p><b>Prefill stage</b> (once, at the first {@link io.kvcache4j.api.KvCache#endPrefill()}, per
 * layer): the last {@code recentTokens} prompt queries are the observers (the paper's PvC; it uses
 * the last 20% of the prompt, we use the configured window so that budgets stay comparable). Each
 * observer's causal softmax over the prompt is computed against the stored keys, weighted linearly
 * from 1.0 (oldest observer) to {@code pyramidDistanceWeight} (default 1.2, newest), averaged over
 * observers and over every query head of the layer: one selection per layer, shared by its KV heads.
 * Sinks and the recent window stay; the top-scoring context fills the layer's budget.
 *
 * <p><b>Generation stage</b> (every decode step, after attention): once {@code
 * pyramidCompressEvery} (default 16) generated tokens have left the recent window, that block is
 * compressed to {@code max(int(16·γ_c·g_l), 1)} tokens, {@code γ_c} = {@code
 * pyramidGenCompressRatio} (0.9), {@code g_l = (1−γ)·(cos(π·l/L)+1)/2 + γ}, γ = {@code
 * pyramidGenDecay} (0.1): 14 of 16 at layer 0 down to 1 of 16 at the last layer. The block's scores
 * come from the recent queries that follow it (the attention pass's fused mass, weighted by distance
 * as above), kept as two running sums per block token. The prompt is never compressed again, so a
 * head grows slowly during decoding; {@link #maxRetainedTokens} states by how much.
 *
 * <p><b>Cost.</b> Until the first {@code endPrefill} the observers' queries are saved in a ring
 * preallocated at bind time ({@code layers × recentTokens × queryHeads × headDim} floats); the prefill
 * stage runs {@code recentTokens} attention passes per KV head over the prompt. A decode step updates
 * two sums for at most {@code recentTokens + 16} tokens and compresses a block every 16 steps;
 * nothing is allocated. The paper's {@code min_context_length} (no compression of short contexts)
 * is not applied: the budget decides.
 */
public final class PyramidInferPolicy extends BudgetedPolicy {

    /**
     * @throws IllegalArgumentException if {@code recentTokens < 1} (the observers are the recent
     *     window)
     */
    public PyramidInferPolicy(PolicyConfig config) {
        super(config);
        if (config.recentTokens() < 1) {
            throw new IllegalArgumentException("pyramidinfer: recentTokens must be in [1, " + Integer.MAX_VALUE
                    + "], was " + config.recentTokens() + " (the recent queries are the observers)");
        }
    }

    @Override
    public String name() {
        return "pyramidinfer";
    }

    /** Fraction of its input context layer {@code layer} of {@code layers} keeps: {@code r_l}. */
    static double prefillRatio(int layer, int layers, double rho) {
        return (1 - rho) * (Math.cos(Math.PI * layer / layers) + 1) / 2 + rho;
    }

    /** The generation-stage ratio {@code g_l}. */
    static double generationRatio(int layer, int layers, double gamma) {
        return (1 - gamma) * (Math.cos(Math.PI * layer / layers) + 1) / 2 + gamma;
    }

    /** Per-layer budgets (sinks and recent window included) for a model of {@code layers} layers. */
    int[] layerBudgets(int layers) {
        double[] share = new double[layers];
        double s = 1;
        double sum = 0;
        for (int l = 0; l < layers; l++) {
            share[l] = s;
            sum += s;
            s *= prefillRatio(l, layers, config.pyramidPrefillDecay());
        }
        long context = (long) config.budgetTokens() - config.sinkTokens() - config.recentTokens();
        int[] budgets = new int[layers];
        for (int l = 0; l < layers; l++) {
            long c = Math.round(context * layers * share[l] / sum);
            budgets[l] = (int) Math.min(Integer.MAX_VALUE, config.sinkTokens() + config.recentTokens() + c);
        }
        return budgets;
    }

    /** Tokens a generation block of layer {@code layer} keeps. */
    int keepPerBlock(int layer, int layers) {
        double tokens = config.pyramidCompressEvery() * config.pyramidGenCompressRatio();
        int keep = (int) (tokens * generationRatio(layer, layers, config.pyramidGenDecay()));
        return Math.max(keep, 1);
    }

    @Override
    public int budgetTokens(ModelShape shape, int layer, int kvHead) {
        shape.checkLayer(layer);
        shape.checkKvHead(kvHead);
        return layerBudgets(shape.layers())[layer];
    }

    @Override
    public long maxRetainedTokens(ModelShape shape, int layer, int kvHead, int decodedTokens) {
        long budget = super.maxRetainedTokens(shape, layer, kvHead, decodedTokens);
        int block = config.pyramidCompressEvery();
        long growth = (long) config.sinkTokens()
                + config.recentTokens()
                + block
                - 1
                + (long) keepPerBlock(layer, shape.layers()) * (decodedTokens / block);
        return budget + Math.min(decodedTokens, growth);
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, this);
    }

    static final class Tracker extends BaseTracker {
        private final int[] budgets;
        private final int[] keep;
        private final int block;
        private final double distanceWeight;
        private final QueryWindow observers;
        /** Per layer: positions below are settled (prompt, or compressed blocks). */
        private final int[] settledUpTo;
        /** Per layer and zone token: sum of observer mass, and of mass × observer index. */
        private final float[][] massSum;

        private final float[][] indexedMassSum;
        private boolean prefillDone;
        private float[] mass = new float[0];
        private float[] score = new float[0];

        Tracker(CacheAccess cache, PyramidInferPolicy policy) {
            super(cache, policy.config);
            int layers = shape.layers();
            this.budgets = policy.layerBudgets(layers);
            this.keep = new int[layers];
            for (int l = 0; l < layers; l++) {
                keep[l] = policy.keepPerBlock(l, layers);
            }
            this.block = policy.config.pyramidCompressEvery();
            this.distanceWeight = policy.config.pyramidDistanceWeight();
            this.observers = new QueryWindow(layers, recent, shape.queryRowFloats());
            this.settledUpTo = new int[layers];
            int zone = recent + block + 1;
            this.massSum = new float[layers][zone];
            this.indexedMassSum = new float[layers][zone];
        }

        @Override
        public ScoreAggregation scoreAggregation() {
            return ScoreAggregation.MEAN;
        }

        @Override
        public void beforeAttention(int layer, int queryPosition, float[] queries, int offset) {
            if (!prefillDone) {
                observers.save(layer, queryPosition, queries, offset);
            }
        }

        @Override
        public void onScores(int layer, int kvHead, int queryPosition, float[] mass, int slots) {
            if (!prefillDone) {
                return;
            }
            int settled = settledUpTo[layer];
            int zone = queryPosition + 1 - settled;
            if (zone <= block) {
                return; // no zone token has a complete block before this query yet
            }
            ensureZone(layer, zone);
            float[] s0 = massSum[layer];
            float[] s1 = indexedMassSum[layer];
            int base = slots - zone;
            float perHead = 1f / shape.kvHeads();
            // Only tokens whose block ended at or before this query are observed by it.
            int observedBlocks = (queryPosition - settled) / block;
            int end = Math.min(zone, observedBlocks * block);
            for (int k = 0; k < end; k++) {
                int blockEnd = settled + (k / block + 1) * block;
                float m = mass[base + k] * perHead;
                s0[k] += m;
                s1[k] += (queryPosition - blockEnd) * m;
            }
        }

        @Override
        public void afterAttention(int layer, int lastQueryPosition) {
            if (!prefillDone) {
                return;
            }
            int next = cache.nextPosition(layer);
            while (next - recent - settledUpTo[layer] >= block) {
                compressBlock(layer, next);
            }
        }

        private void compressBlock(int layer, int next) {
            int settled = settledUpTo[layer];
            int blockEnd = settled + block;
            int observersSeen = next - blockEnd;
            double slope = observersSeen > 1 ? (distanceWeight - 1) / (observersSeen - 1) : 0;
            HeadSlots first = heads[layer][0];
            int base = first.count() - (next - settled);
            long[] pos = first.longColumn(posColumn);
            float[] s0 = massSum[layer];
            float[] s1 = indexedMassSum[layer];
            ensureScratch(block);
            int m = 0;
            for (int k = 0; k < block; k++) {
                if (pos[base + k] < sinks) {
                    continue;
                }
                float sc = (float) (s0[k] + slope * s1[k]);
                keys[m++] = Selection.key(Selection.sortable(sc), base + k);
            }
            evictSmallestEverywhere(heads[layer], m, Math.min(m, block - keep[layer]));
            int zone = next - settled;
            System.arraycopy(s0, block, s0, 0, zone - block);
            System.arraycopy(s1, block, s1, 0, zone - block);
            Arrays.fill(s0, zone - block, zone, 0f);
            Arrays.fill(s1, zone - block, zone, 0f);
            settledUpTo[layer] = blockEnd;
        }

        private void ensureZone(int layer, int zone) {
            if (massSum[layer].length < zone) {
                int cap = Math.max(zone, massSum[layer].length * 2);
                massSum[layer] = Arrays.copyOf(massSum[layer], cap);
                indexedMassSum[layer] = Arrays.copyOf(indexedMassSum[layer], cap);
            }
        }

        @Override
        public void endPrefill() {
            if (prefillDone) {
                return; // later prompt turns go through the generation stage
            }
            prefillDone = true;
            for (int l = 0; l < shape.layers(); l++) {
                prefillLayer(l);
                settledUpTo[l] = cache.nextPosition(l);
            }
        }

        private void prefillLayer(int layer) {
            HeadSlots first = heads[layer][0];
            int count = first.count();
            if (count <= budgets[layer]) {
                return;
            }
            int next = cache.nextPosition(layer);
            int obs = observers.available(layer);
            if (mass.length < count) {
                mass = new float[count];
                score = new float[count];
            }
            ensureScratch(count);
            Arrays.fill(score, 0, count, 0f);
            long[] pos = first.longColumn(posColumn);
            int group = shape.groupSize();
            float[] rows = observers.rows(layer);
            for (int i = 0; i < obs; i++) {
                double weight = obs > 1 ? 1 + (distanceWeight - 1) * i / (obs - 1) : 1;
                float w = (float) (weight / shape.kvHeads());
                int visible = countAtOrBefore(pos, count, observers.position(layer, obs, i));
                for (int h = 0; h < shape.kvHeads(); h++) {
                    cache.attentionMass(
                            layer,
                            h,
                            rows,
                            observers.offset(layer, obs, i) + h * group * shape.headDim(),
                            visible,
                            ScoreAggregation.MEAN,
                            mass);
                    for (int s = 0; s < visible; s++) {
                        score[s] += w * mass[s];
                    }
                }
            }
            int m = candidates(first, score, next);
            evictSmallestEverywhere(heads[layer], m, count - budgets[layer]);
        }

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
            long zone = 0;
            for (int l = 0; l < massSum.length; l++) {
                zone += 4L * (massSum[l].length + indexedMassSum[l].length);
            }
            return super.stateBytes() + observers.bytes() + zone + 8L * mass.length;
        }
    }
}
