package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicyProvider;
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
 * <p><b>Parameters</b> ({@link Config}): {@code prefillDecay} ρ (default 0.9), {@code genDecay} γ
 * (0.1), {@code genCompressRatio} γ_c (0.9), {@code distanceWeight} (1.2), {@code compressEvery}
 * (16), plus the {@link Budget}, whose recent window must hold at least 1 token (the observers).
 *
 * <p><b>Layer schedule.</b> The paper keeps {@code r_l = (1−ρ)·(cos(π·l/L)+1)/2 + ρ} of the context
 * at layer {@code l} (ρ = {@code prefillDecay}, default 0.9), and because it drops the
 * hidden states the reduction compounds: layer {@code l}'s KV holds {@code s_l = Π_{j<l} r_j} of the
 * context (1.0 at layers 0 and 1, about 0.2 at layer 31 of 32). Here the budget's {@code tokens} is
 * the mean over layers: the context part {@code E = tokens − sinkTokens − recentTokens} is split
 * as {@code round(E·L·s_l / Σ s)}, so the whole cache holds what a uniform budget would, and deeper
 * layers hold fewer tokens ({@link #budgetTokens(ModelShape, int, int)}).
 *
 * <p><b>Prefill stage</b> (once, at the first {@link io.kvcache4j.api.KvCache#endPrefill()}, per
 * layer): the last {@code recentTokens} prompt queries are the observers (the paper's PvC; it uses
 * the last 20% of the prompt, we use the configured window so that budgets stay comparable). Each
 * observer's causal softmax over the prompt is computed against the stored keys, weighted linearly
 * from 1.0 (oldest observer) to {@code distanceWeight} (default 1.2, newest), averaged over
 * observers and over every query head of the layer: one selection per layer, shared by its KV heads.
 * Sinks and the recent window stay; the top-scoring context fills the layer's budget.
 *
 * <p><b>Generation stage</b> (every decode step, after attention): once {@code compressEvery}
 * (default 16) generated tokens have left the recent window, that block is compressed to {@code
 * max(int(16·γ_c·g_l), 1)} tokens, {@code γ_c} = {@code genCompressRatio} (0.9), {@code g_l =
 * (1−γ)·(cos(π·l/L)+1)/2 + γ}, γ = {@code genDecay} (0.1): 14 of 16 at layer 0 down to 1 of 16 at
 * the last layer. The block's scores
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
    static final String NAME = "pyramidinfer";

    /**
     * PyramidInfer's configuration; defaults from {@code configs/llama3_8b.json} of
     * mutonix/pyramidinfer.
     *
     * @param budget mean tokens per (layer, KV head) over layers, sinks and recent window included;
     *     not a fraction
     * @param prefillDecay decay ratio ρ of the prefill cosine schedule, in (0, 1] (default 0.9)
     * @param genDecay decay ratio γ of the generation cosine schedule, in (0, 1] (default 0.1)
     * @param genCompressRatio generation compress ratio γ_c, in (0, 1] (default 0.9)
     * @param distanceWeight weight of the newest observer query, linear from 1.0, in [1, 1000]
     *     (default 1.2)
     * @param compressEvery generated tokens per compression block, {@code >= 1} (default 16)
     */
    public record Config(
            Budget budget,
            double prefillDecay,
            double genDecay,
            double genCompressRatio,
            double distanceWeight,
            int compressEvery) {
        /** Default prefill decay ρ: 0.9. */
        public static final double DEFAULT_PREFILL_DECAY = 0.9;
        /** Default generation decay γ: 0.1. */
        public static final double DEFAULT_GEN_DECAY = 0.1;
        /** Default generation compress ratio γ_c: 0.9. */
        public static final double DEFAULT_GEN_COMPRESS_RATIO = 0.9;
        /** Default weight of the newest observer: 1.2. */
        public static final double DEFAULT_DISTANCE_WEIGHT = 1.2;
        /** Default generation block: 16 tokens. */
        public static final int DEFAULT_COMPRESS_EVERY = 16;

        /** @throws IllegalArgumentException for a fraction budget or a value out of its range */
        public Config {
            budget = tokenBudget(budget);
            ratio(NAME, "prefillDecay", prefillDecay);
            ratio(NAME, "genDecay", genDecay);
            ratio(NAME, "genCompressRatio", genCompressRatio);
            if (!(distanceWeight >= 1 && distanceWeight <= 1000)) {
                throw new IllegalArgumentException(
                        NAME + ": distanceWeight must be in [1, 1000], was " + distanceWeight);
            }
            atLeast(NAME, "compressEvery", compressEvery, 1);
        }

        /** The published defaults for {@code budget}: ρ 0.9, γ 0.1, γ_c 0.9, weight 1.2, blocks of 16. */
        public static Config defaults(Budget budget) {
            return new Config(
                    budget,
                    DEFAULT_PREFILL_DECAY,
                    DEFAULT_GEN_DECAY,
                    DEFAULT_GEN_COMPRESS_RATIO,
                    DEFAULT_DISTANCE_WEIGHT,
                    DEFAULT_COMPRESS_EVERY);
        }

        /** This configuration with prefill decay {@code ratio}. */
        public Config withPrefillDecay(double ratio) {
            return new Config(budget, ratio, genDecay, genCompressRatio, distanceWeight, compressEvery);
        }

        /** This configuration with generation decay {@code ratio}. */
        public Config withGenDecay(double ratio) {
            return new Config(budget, prefillDecay, ratio, genCompressRatio, distanceWeight, compressEvery);
        }

        /** This configuration with generation compress ratio {@code ratio}. */
        public Config withGenCompressRatio(double ratio) {
            return new Config(budget, prefillDecay, genDecay, ratio, distanceWeight, compressEvery);
        }

        /** This configuration with distance weight {@code weight}. */
        public Config withDistanceWeight(double weight) {
            return new Config(budget, prefillDecay, genDecay, genCompressRatio, weight, compressEvery);
        }

        /** This configuration with generation blocks of {@code tokens}. */
        public Config withCompressEvery(int tokens) {
            return new Config(budget, prefillDecay, genDecay, genCompressRatio, distanceWeight, tokens);
        }
    }

    private final Config config;

    /**
     * @throws IllegalArgumentException if the budget's {@code recentTokens < 1} (the observers are the
     *     recent window)
     */
    public PyramidInferPolicy(Config config) {
        super(config.budget());
        this.config = config;
        if (budget.recentTokens() < 1) {
            throw new IllegalArgumentException("pyramidinfer: recentTokens must be in [1, " + Integer.MAX_VALUE
                    + "], was " + budget.recentTokens() + " (the recent queries are the observers)");
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
            s *= prefillRatio(l, layers, config.prefillDecay());
        }
        long context = (long) budget.tokens() - budget.sinkTokens() - budget.recentTokens();
        int[] budgets = new int[layers];
        for (int l = 0; l < layers; l++) {
            long c = Math.round(context * layers * share[l] / sum);
            budgets[l] = (int) Math.min(Integer.MAX_VALUE, budget.sinkTokens() + budget.recentTokens() + c);
        }
        return budgets;
    }

    /** Tokens a generation block of layer {@code layer} keeps. */
    int keepPerBlock(int layer, int layers) {
        double tokens = config.compressEvery() * config.genCompressRatio();
        int keep = (int) (tokens * generationRatio(layer, layers, config.genDecay()));
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
        long held = super.maxRetainedTokens(shape, layer, kvHead, decodedTokens);
        int block = config.compressEvery();
        long growth = (long) budget.sinkTokens()
                + budget.recentTokens()
                + block
                - 1
                + (long) keepPerBlock(layer, shape.layers()) * (decodedTokens / block);
        return held + Math.min(decodedTokens, growth);
    }

    @Override
    public EvictionTracker bind(CacheAccess cache) {
        return new Tracker(cache, this);
    }

    /** Registers {@code pyramidinfer} with {@link io.kvcache4j.api.EvictionPolicies}, at the published defaults. */
    public static final class Provider implements EvictionPolicyProvider {
        @Override
        public String name() {
            return NAME;
        }

        @Override
        public String description() {
            return "PyramidInfer: layer-wise decreasing budgets scored by the recent queries, after prefill"
                    + " and every 16 generated tokens";
        }

        @Override
        public PyramidInferPolicy create(Budget budget) {
            return new PyramidInferPolicy(Config.defaults(budget));
        }
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
            super(cache, policy.budget);
            int layers = shape.layers();
            this.budgets = policy.layerBudgets(layers);
            this.keep = new int[layers];
            for (int l = 0; l < layers; l++) {
                keep[l] = policy.keepPerBlock(l, layers);
            }
            this.block = policy.config.compressEvery();
            this.distanceWeight = policy.config.distanceWeight();
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
