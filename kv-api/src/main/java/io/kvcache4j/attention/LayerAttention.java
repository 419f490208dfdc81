package io.kvcache4j.attention;

import io.kvcache4j.cache.CpuLayerAttention;
import io.kvcache4j.store.HeadStore;

/**
 * Attention over every KV head of one layer for a batch of query tokens: the unit a device backend
 * implements with one launch per layer, and where a CPU implementation spreads heads over cores.
 *
 * <p>The cache fills a {@link LayerBatch} (queries, for each token and KV head how many of the
 * head's slots it sees, where outputs and log-sum-exps go, and whether the eviction policy wants
 * per-key softmax mass) and calls {@link #attend}. Implementations read the layer's {@link
 * HeadStore}s (or their own copies of them, e.g. on a device) and write normalised outputs and,
 * when asked, the log-sum-exp of every (token, query head), so that the result is a partial that
 * merges exactly with other sources ({@link Partial}).
 *
 * <p>Driven by the cache's thread, one batch at a time; an implementation may use other threads
 * inside {@link #attend} but returns only when the batch is complete.
 */
public interface LayerAttention {

    /** Runs the batch; see {@link LayerBatch} for what to read and write. */
    void attend(LayerBatch batch);

    /**
     * Whether {@link #attend} can report per-key softmax mass ({@link LayerBatch#scoreAggregation()}
     * not null). A cache whose eviction policy needs scores refuses to build with a source that
     * cannot deliver them.
     */
    boolean reportsScores();

    /**
     * The CPU source: for each token and KV head, single-pass grouped attention over the head's store
     * ({@link HeadStore#attend}) with the given kernel, and the per-key mass from the same pass; heads
     * and long heads' chunks of {@link CpuLayerAttention#CHUNK_TOKENS} run on the context's pool.
     */
    static LayerAttention cpu(LayerContext context, AttentionKernel kernel) {
        return new CpuLayerAttention(context, kernel);
    }
}
