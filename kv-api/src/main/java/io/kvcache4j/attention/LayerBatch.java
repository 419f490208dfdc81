package io.kvcache4j.attention;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;

/**
 * One layer's attention work, filled by the cache and reused across steps (so a decode step
 * allocates nothing). Layout as in {@link io.kvcache4j.api.KvCache}: query and output rows of {@code
 * queryHeads × headDim} floats per token; query head {@code q} reads KV head {@code q / groupSize}.
 *
 * <p>Token {@code t} of the batch, for KV head {@code h}, attends slots {@code [0, visible(t, h))}
 * of that head's store (causal: later tokens see more). Outputs are normalised; when {@link
 * #lse()} is not null the log-sum-exp of the scaled logits of every (token, query head) goes to
 * {@code lse[lseOffset + t·queryHeads + q]} ({@code −∞} where a head sees no slot, output 0).
 *
 * <p>When {@link #scoreAggregation()} is not null the source reports, after each (token, KV head)
 * pass and in increasing head order per token, the softmax mass of each visible slot reduced over
 * the group, through {@link #reportScores}.
 */
public final class LayerBatch {
    /** Receives per-key softmax mass; see {@link LayerBatch#reportScores}. */
    @FunctionalInterface
    public interface ScoreSink {
        /** Mass of slots {@code [0, slots)} of {@code kvHead} for batch token {@code token}; read it now. */
        void onScores(int kvHead, int token, float[] mass, int slots);
    }

    private final ModelShape shape;
    private final int[] visible;
    private int layer;
    private int tokens;
    private float[] queries;
    private int queriesOffset;
    private float scale;
    private float[] out;
    private int outOffset;
    private float[] lse;
    private int lseOffset;
    private ScoreAggregation aggregation;
    private ScoreSink sink;

    /** A batch for {@code shape} of at most {@code maxTokens} tokens. */
    public LayerBatch(ModelShape shape, int maxTokens) {
        if (maxTokens < 1) {
            throw new IllegalArgumentException("maxTokens must be >= 1, was " + maxTokens);
        }
        this.shape = shape;
        this.visible = new int[Math.multiplyExact(maxTokens, shape.kvHeads())];
    }

    /** Sets everything but the visible counts ({@link #setVisible}). */
    public LayerBatch set(
            int layer,
            int tokens,
            float[] queries,
            int queriesOffset,
            float scale,
            float[] out,
            int outOffset,
            float[] lse,
            int lseOffset,
            ScoreAggregation aggregation,
            ScoreSink sink) {
        if (tokens < 1 || tokens > maxTokens()) {
            throw new IllegalArgumentException("tokens " + tokens + " out of range [1, " + maxTokens() + "]");
        }
        if (aggregation != null && sink == null) {
            throw new IllegalArgumentException("a score aggregation needs a sink");
        }
        this.layer = layer;
        this.tokens = tokens;
        this.queries = queries;
        this.queriesOffset = queriesOffset;
        this.scale = scale;
        this.out = out;
        this.outOffset = outOffset;
        this.lse = lse;
        this.lseOffset = lseOffset;
        this.aggregation = aggregation;
        this.sink = sink;
        return this;
    }

    /** Sets how many slots of {@code kvHead} token {@code token} sees. */
    public void setVisible(int token, int kvHead, int slots) {
        visible[token * shape.kvHeads() + kvHead] = slots;
    }

    public ModelShape shape() {
        return shape;
    }

    public int maxTokens() {
        return visible.length / shape.kvHeads();
    }

    public int layer() {
        return layer;
    }

    public int tokens() {
        return tokens;
    }

    public float[] queries() {
        return queries;
    }

    public int queriesOffset() {
        return queriesOffset;
    }

    /** Logit scale, usually {@code 1/sqrt(headDim)}. */
    public float scale() {
        return scale;
    }

    public float[] out() {
        return out;
    }

    public int outOffset() {
        return outOffset;
    }

    /** Where log-sum-exps go, or null if the caller wants none. */
    public float[] lse() {
        return lse;
    }

    public int lseOffset() {
        return lseOffset;
    }

    /** Slots of {@code kvHead} that token {@code token} sees: a prefix of the store. */
    public int visible(int token, int kvHead) {
        return visible[token * shape.kvHeads() + kvHead];
    }

    /** The reduction the eviction policy wants, or null if it wants no scores. */
    public ScoreAggregation scoreAggregation() {
        return aggregation;
    }

    /** Reports the mass of one (token, KV head) pass to the cache. */
    public void reportScores(int kvHead, int token, float[] mass, int slots) {
        sink.onScores(kvHead, token, mass, slots);
    }
}
