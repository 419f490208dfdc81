package io.kvcache4j.hybrid;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.cuda.CudaLayerAttention;
import io.kvcache4j.cuda.Device;
import io.kvcache4j.cuda.DeviceRows;

/**
 * A layer's attention under {@link CudaHeadInferFactory}, unit by unit (consecutive KV heads whose
 * offloaded ones fit one staging slot; the whole layer by default): the schedule stages the unit's
 * offloaded heads into device memory (waiting for their prefetch) and starts the next unit's
 * prefetch, then {@link CudaLayerAttention} runs the unit on the device over the resident heads' rows
 * and the staged copies. A head's result depends on its own rows and queries alone (the kernels and
 * the chunking of {@code cuda-f16}, per head), so the outputs are bit-identical to the all-resident
 * {@code cuda-f16} cache whatever the units. A unit short of the layer attends a sub-batch: its heads'
 * queries gathered, their outputs and log-sum-exps scattered back. Batches that want per-key scores
 * run on kv-api's CPU source over the stores (reading the resident heads' host mirrors, the offloaded
 * ones from pinned memory), without staging. Driven by the cache's thread.
 */
final class CudaHeadInferLayerAttention implements LayerAttention, AutoCloseable {
    private final CudaHeadInferSchedule schedule;
    private final ModelShape shape;
    private final int layer;
    private final int[] units;
    private final CudaLayerAttention[] device;
    private final LayerAttention cpu;
    private final LayerBatch[] sub;
    private float[] q = new float[0];
    private float[] out = new float[0];
    private float[] lse = new float[0];
    private boolean closed;

    CudaHeadInferLayerAttention(
            CudaHeadInferSchedule schedule,
            Device gpu,
            ModelShape shape,
            int layer,
            DeviceRows[] rows,
            LayerAttention cpu) {
        this.schedule = schedule;
        this.shape = shape;
        this.layer = layer;
        this.units = schedule.units(layer);
        this.cpu = cpu;
        int n = units.length - 1;
        this.device = new CudaLayerAttention[n];
        this.sub = new LayerBatch[n];
        for (int u = 0; u < n; u++) {
            int heads = units[u + 1] - units[u];
            ModelShape s =
                    n == 1 ? shape : new ModelShape(shape.layers(), heads * shape.groupSize(), heads, shape.headDim());
            device[u] = new CudaLayerAttention(
                    gpu,
                    s,
                    layer,
                    java.util.Arrays.copyOfRange(rows, units[u], units[u + 1]),
                    CudaLayerAttention.DEFAULT_CHUNK,
                    null); // score-reporting batches take the CPU source before any unit runs
            sub[u] = new LayerBatch(s, 1);
        }
    }

    @Override
    public void attend(LayerBatch batch) {
        if (closed) {
            throw new IllegalStateException("layer attention is closed");
        }
        if (batch.scoreAggregation() != null) {
            cpu.attend(batch);
            return;
        }
        if (units.length == 2) {
            schedule.begin(layer, 0);
            device[0].attend(batch);
            return;
        }
        int tokens = batch.tokens();
        int g = shape.groupSize();
        int d = shape.headDim();
        int qRow = shape.queryRowFloats();
        for (int u = 0; u + 1 < units.length; u++) {
            int h0 = units[u];
            int heads = units[u + 1] - h0;
            int w = heads * g * d;
            if (q.length < tokens * w) {
                q = new float[Math.max(tokens * w, 2 * q.length)];
                out = new float[q.length];
            }
            if (lse.length < tokens * heads * g) {
                lse = new float[Math.max(tokens * heads * g, 2 * lse.length)];
            }
            for (int t = 0; t < tokens; t++) {
                System.arraycopy(batch.queries(), batch.queriesOffset() + t * qRow + h0 * g * d, q, t * w, w);
            }
            if (sub[u].maxTokens() < tokens) {
                sub[u] = new LayerBatch(sub[u].shape(), Math.max(tokens, 2 * sub[u].maxTokens()));
            }
            LayerBatch b = sub[u].set(layer, tokens, q, 0, batch.scale(), out, 0, lse, 0, null, null);
            for (int t = 0; t < tokens; t++) {
                for (int h = 0; h < heads; h++) {
                    b.setVisible(t, h, batch.visible(t, h0 + h));
                }
            }
            schedule.begin(layer, u);
            device[u].attend(b);
            for (int t = 0; t < tokens; t++) {
                System.arraycopy(out, t * w, batch.out(), batch.outOffset() + t * qRow + h0 * g * d, w);
                if (batch.lse() != null) {
                    System.arraycopy(
                            lse,
                            t * heads * g,
                            batch.lse(),
                            batch.lseOffset() + t * shape.queryHeads() + h0 * g,
                            heads * g);
                }
            }
        }
    }

    @Override
    public boolean reportsScores() {
        return true;
    }

    /** Frees the layer's device buffers; the last layer to close frees the schedule's staging slots. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (CudaLayerAttention a : device) {
            a.close();
        }
        schedule.layerClosed();
    }
}
