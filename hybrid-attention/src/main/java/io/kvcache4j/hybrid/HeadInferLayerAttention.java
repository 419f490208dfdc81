package io.kvcache4j.hybrid;

import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;

/**
 * A layer's attention under {@link HeadInferFactory}: stages the layer's offloaded heads (waiting for
 * their prefetch, or transferring them now), starts the next layer's prefetch, runs kv-api's CPU
 * source over the stores (the same work split, kernel and merge as the exact cache, so the outputs
 * are bit-identical to it), then releases the staging buffers. Reports per-key scores like the CPU
 * source, so every eviction policy composes with it. Driven by the cache's thread.
 */
final class HeadInferLayerAttention implements LayerAttention {
    private final HeadInferSchedule schedule;
    private final int layer;
    private final LayerAttention cpu;

    HeadInferLayerAttention(HeadInferSchedule schedule, int layer, LayerAttention cpu) {
        this.schedule = schedule;
        this.layer = layer;
        this.cpu = cpu;
    }

    @Override
    public void attend(LayerBatch batch) {
        try {
            schedule.begin(layer);
            cpu.attend(batch);
        } finally {
            schedule.end(layer);
        }
    }

    @Override
    public boolean reportsScores() {
        return cpu.reportsScores();
    }
}
