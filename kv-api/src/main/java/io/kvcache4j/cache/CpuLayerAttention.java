package io.kvcache4j.cache;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.SlotSelection;

/**
 * The CPU {@link LayerAttention}: for each token of the batch and each KV head, one single-pass
 * grouped attention over the head's store (each stored byte read once for the whole GQA group),
 * with the per-key softmax mass computed from the logits recorded in the same pass when the policy
 * wants it. Allocates only when a head holds more slots than ever before (the mass scratch).
 */
public final class CpuLayerAttention implements LayerAttention {
    private final ModelShape shape;
    private final HeadStore[] stores;
    private final AttentionKernel kernel;
    private final GroupAttention state;
    private final SlotSelection selection = new SlotSelection();
    private float[] mass = new float[0];

    public CpuLayerAttention(ModelShape shape, HeadStore[] stores, AttentionKernel kernel) {
        if (stores.length != shape.kvHeads()) {
            throw new IllegalArgumentException(
                    "a layer has " + shape.kvHeads() + " KV heads, got " + stores.length + " stores");
        }
        this.shape = shape;
        this.stores = stores.clone();
        this.kernel = kernel;
        this.state = new GroupAttention(shape.groupSize(), shape.headDim(), kernel);
    }

    @Override
    public boolean reportsScores() {
        return true;
    }

    @Override
    public void attend(LayerBatch b) {
        int g = shape.groupSize();
        int d = shape.headDim();
        int qRow = shape.queryRowFloats();
        int qHeads = shape.queryHeads();
        ScoreAggregation agg = b.scoreAggregation();
        float[] lse = b.lse();
        for (int t = 0; t < b.tokens(); t++) {
            for (int h = 0; h < shape.kvHeads(); h++) {
                int visible = b.visible(t, h);
                int headOff = h * g * d;
                state.begin(b.queries(), b.queriesOffset() + t * qRow + headOff, b.scale());
                if (agg != null) {
                    state.recordLogits(visible);
                }
                stores[h].attend(state, selection.prefix(visible));
                state.finish(b.out(), b.outOffset() + t * qRow + headOff);
                if (lse != null) {
                    for (int j = 0; j < g; j++) {
                        lse[b.lseOffset() + t * qHeads + h * g + j] = state.lse(j);
                    }
                }
                if (agg != null) {
                    if (mass.length < visible) {
                        mass = new float[Math.max(visible, mass.length * 2)];
                    }
                    kernel.mass(state, visible, agg, mass);
                    b.reportScores(h, t, mass, visible);
                }
            }
        }
    }
}
