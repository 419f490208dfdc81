package io.kvcache4j.hybrid;

import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.attention.Partial;
import io.kvcache4j.cuda.CudaLayerAttention;
import io.kvcache4j.cuda.Device;
import io.kvcache4j.store.HeadStore;
import java.util.Arrays;

/**
 * The layer source of a split storage whose fast tier is a GPU (HGCA, Fan et al., "HGCA: Hybrid
 * GPU-CPU Attention for Long Context LLM Inference", 2025: dense attention over the recent KV on the
 * device, sparse attention over salient KV on CPU threads, merged by log-sum-exp). Per batch:
 *
 * <ol>
 *   <li>the sparse part on the CPU: one work item per KV head on the cache's {@link AttentionPool},
 *       each token's slow-tier partial ({@link SplitHeadStore#slowPartial}: the store's own sparse
 *       selection, HGCA's per-head salient keys or RetrievalAttention's retrieved ones);
 *   <li>the dense part on the device: {@link CudaLayerAttention} over the stores' device copies of
 *       their fast rows (sinks and recent window, a prefix per token), with the CPU partials uploaded
 *       and merged into the combine launch ({@code kv_combine_hybrid}).
 * </ol>
 *
 * <p>Each work item is computed by one thread from the data alone and the merge order is fixed, so
 * outputs do not depend on the pool. Does not report per-key scores. Driven by the cache's thread.
 */
final class CudaSplitLayerAttention implements LayerAttention, AttentionPool.Task, AutoCloseable {
    private final ModelShape shape;
    private final SplitHeadStore[] stores;
    private final AttentionPool pool;
    private final GroupAttention[] states;
    private final CudaLayerAttention dense;
    private LayerBatch denseBatch;
    private float[] extraOut = new float[0];
    private float[] extraLse = new float[0];
    private LayerBatch batch;
    private boolean closed;

    CudaSplitLayerAttention(Device device, LayerContext context, AttentionKernel kernel) {
        this.shape = context.shape();
        this.stores = new SplitHeadStore[shape.kvHeads()];
        HeadStore[] copies = new HeadStore[stores.length];
        for (int h = 0; h < stores.length; h++) {
            if (!(context.store(h) instanceof SplitHeadStore s) || s.fastCopy() == null) {
                throw new IllegalArgumentException("KV head " + h + " of layer " + context.layer()
                        + " is not a split store with its fast rows on the device: "
                        + context.store(h).getClass().getName());
            }
            stores[h] = s;
            copies[h] = s.fastCopy();
        }
        this.pool = context.pool();
        int workers = pool == null ? 1 : pool.parallelism();
        this.states = new GroupAttention[workers];
        for (int w = 0; w < workers; w++) {
            states[w] = new GroupAttention(shape.groupSize(), shape.headDim(), kernel);
        }
        this.dense = new CudaLayerAttention(
                device,
                new LayerContext(shape, context.layer(), copies, context.pool()),
                CudaLayerAttention.DEFAULT_CHUNK);
        this.denseBatch = new LayerBatch(shape, 1);
    }

    @Override
    public boolean reportsScores() {
        return false;
    }

    @Override
    public void attend(LayerBatch b) {
        if (closed) {
            throw new IllegalStateException("layer attention is closed");
        }
        if (b.scoreAggregation() != null) {
            throw new IllegalStateException("split storage does not report per-key scores");
        }
        int tokens = b.tokens();
        int rows = tokens * shape.queryHeads();
        int d = shape.headDim();
        if (extraLse.length < rows) {
            extraOut = new float[Math.max(rows, 2 * extraLse.length) * d];
            extraLse = new float[extraOut.length / d];
        }
        if (denseBatch.maxTokens() < tokens) {
            denseBatch = new LayerBatch(shape, Math.max(tokens, 2 * denseBatch.maxTokens()));
        }
        LayerBatch db = denseBatch.set(
                b.layer(),
                tokens,
                b.queries(),
                b.queriesOffset(),
                b.scale(),
                b.out(),
                b.outOffset(),
                b.lse(),
                b.lseOffset(),
                null,
                null);
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < stores.length; h++) {
                int v = b.visible(t, h);
                if (v < 0 || v > stores[h].count()) {
                    throw new IllegalArgumentException("token " + t + " sees " + v + " slots of KV head " + h
                            + "; the store holds " + stores[h].count());
                }
                db.setVisible(t, h, stores[h].fastRowsSeen(v));
            }
        }
        batch = b;
        try {
            if (pool != null && stores.length > 1) {
                pool.run(this, stores.length);
            } else {
                for (int h = 0; h < stores.length; h++) {
                    run(h, 0);
                }
            }
        } finally {
            batch = null;
        }
        dense.attend(db, extraOut, extraLse);
    }

    /** The slow-tier partials of one KV head for every token of the batch. */
    @Override
    public void run(int kvHead, int worker) {
        LayerBatch b = batch;
        GroupAttention st = states[worker];
        int g = shape.groupSize();
        int d = shape.headDim();
        int qh = shape.queryHeads();
        int qRow = shape.queryRowFloats();
        int headOff = kvHead * g * d;
        for (int t = 0; t < b.tokens(); t++) {
            int row = t * qh + kvHead * g;
            st.begin(b.queries(), b.queriesOffset() + t * qRow + headOff, b.scale());
            Partial p = stores[kvHead].slowPartial(st, b.visible(t, kvHead));
            if (p == null) {
                Arrays.fill(extraOut, row * d, (row + g) * d, 0f);
                Arrays.fill(extraLse, row, row + g, Float.NEGATIVE_INFINITY);
            } else {
                System.arraycopy(p.out(), 0, extraOut, row * d, g * d);
                System.arraycopy(p.lse(), 0, extraLse, row, g);
            }
        }
    }

    /** Frees the device source's buffers. Idempotent. */
    @Override
    public void close() {
        closed = true;
        dense.close();
    }
}
