package io.kvcache4j.hybrid;

import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.cuda.CudaLayerAttention;

/**
 * A layer's attention under {@link CudaHeadInferFactory}: the schedule stages the layer's offloaded
 * heads into device memory (waiting for their prefetch) and starts the next layer's prefetch, then
 * {@link CudaLayerAttention} runs the layer on the device over the resident heads' rows and the staged
 * copies, with the same kernels and chunking as the all-resident {@code cuda-f16} cache, so the
 * outputs are bit-identical to it. Batches that want per-key scores run on kv-api's CPU source over
 * the stores (reading the resident heads back from the device, the offloaded ones from pinned memory),
 * without staging. Driven by the cache's thread.
 */
final class CudaHeadInferLayerAttention implements LayerAttention, AutoCloseable {
    private final CudaHeadInferSchedule schedule;
    private final int layer;
    private final CudaLayerAttention device;
    private boolean closed;

    CudaHeadInferLayerAttention(CudaHeadInferSchedule schedule, int layer, CudaLayerAttention device) {
        this.schedule = schedule;
        this.layer = layer;
        this.device = device;
    }

    @Override
    public void attend(LayerBatch batch) {
        if (closed) {
            throw new IllegalStateException("layer attention is closed");
        }
        if (batch.scoreAggregation() == null) {
            schedule.begin(layer);
        }
        device.attend(batch);
    }

    @Override
    public boolean reportsScores() {
        return device.reportsScores();
    }

    /** Frees the layer's device buffers; the last layer to close frees the schedule's staging slots. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.close();
        schedule.layerClosed();
    }
}
