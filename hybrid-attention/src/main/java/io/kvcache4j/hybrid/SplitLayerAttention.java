package io.kvcache4j.hybrid;

import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.SlotSelection;

/**
 * The layer source of {@link SplitFactory}: one work item per KV head, attending every token of the
 * batch over that head's store in token order (so each store is driven by one thread at a time),
 * items spread over the cache's {@link AttentionPool} (HGCA's CPU threads). Heads are never cut into
 * chunks. Each item is computed by one thread from the data alone, so outputs do not depend on the
 * pool. Does not report per-key scores. Driven by the cache's thread.
 */
final class SplitLayerAttention implements LayerAttention, AttentionPool.Task {
    private final ModelShape shape;
    private final HeadStore[] stores;
    private final AttentionPool pool;
    private final GroupAttention[] states;
    private final SlotSelection[] selections;
    private LayerBatch batch;

    SplitLayerAttention(LayerContext context, AttentionKernel kernel) {
        this.shape = context.shape();
        this.stores = context.stores().clone();
        this.pool = context.pool();
        int workers = pool == null ? 1 : pool.parallelism();
        this.states = new GroupAttention[workers];
        this.selections = new SlotSelection[workers];
        for (int w = 0; w < workers; w++) {
            states[w] = new GroupAttention(shape.groupSize(), shape.headDim(), kernel);
            selections[w] = new SlotSelection();
        }
    }

    @Override
    public boolean reportsScores() {
        return false;
    }

    @Override
    public void attend(LayerBatch b) {
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
    }

    @Override
    public void run(int kvHead, int worker) {
        LayerBatch b = batch;
        GroupAttention st = states[worker];
        int g = shape.groupSize();
        int qRow = shape.queryRowFloats();
        int headOff = kvHead * g * shape.headDim();
        for (int t = 0; t < b.tokens(); t++) {
            st.begin(b.queries(), b.queriesOffset() + t * qRow + headOff, b.scale());
            stores[kvHead].attend(st, selections[worker].prefix(b.visible(t, kvHead)));
            st.finish(b.out(), b.outOffset() + t * qRow + headOff);
            float[] lse = b.lse();
            if (lse != null) {
                for (int j = 0; j < g; j++) {
                    lse[b.lseOffset() + t * shape.queryHeads() + kvHead * g + j] = st.lse(j);
                }
            }
        }
    }
}
