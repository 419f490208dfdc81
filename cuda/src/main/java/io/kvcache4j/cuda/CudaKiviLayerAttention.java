package io.kvcache4j.cuda;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A layer's attention over {@link CudaKiviHeadStore}s on the device. For every (token, KV head) that
 * sees {@code v} slots, the quantized part (slots {@code [0, min(v, Q))}) is attended on the packed
 * codes by the int4 kernel in chunks sized by that count ({@link KernelEmulator#chunkFor}) and merged
 * by {@code kv_combine}; that partial is then the extra partial of the residual's {@link
 * CudaLayerAttention}
 * (slots {@code [Q, v)}, exact f16), merged with its chunks by {@code kv_combine_hybrid}. Both splits
 * depend on the visible counts alone, so a token's result does not depend on its batch.
 *
 * <p>When the eviction policy wants per-key mass the batch runs on the CPU source over the host
 * stores of record (the same codes and rows), which reports it.
 *
 * <p>Driven by the cache's thread. Allocates device and staging memory only when a batch is larger
 * than any before.
 */
public final class CudaKiviLayerAttention implements LayerAttention, AutoCloseable {
    /**
     * The int4 split: chunks sized by each (token, KV head)'s quantized count ({@link
     * KernelEmulator#CHUNK_BY_LENGTH}), as the f16 kernels' default. On an H200 the pipelined int4
     * kernel's best fixed chunks were 2,048 slots at 64K tokens and 8,192 at 1M (13 % faster there than
     * 2,048), which is what the sizing picks.
     */
    static final int INT4_CHUNK = KernelEmulator.CHUNK_BY_LENGTH;

    private static final ValueLayout.OfFloat F32 = KernelEmulator.F32;
    private static final long MAX_PARTIAL_BYTES = CudaLayerAttention.MAX_PARTIAL_BYTES;

    private final Device device;
    private final ModelShape shape;
    private final CudaKiviHeadStore[] stores;
    private final KiviLayout layout;
    private final LayerAttention cpu;
    private final CudaLayerAttention residual;
    private LayerBatch residualBatch;

    private Device.HostBuffer hostUp;
    private Device.HostBuffer hostDown;
    private long up;
    private long down;
    private long parts;
    private long upBytes;
    private long downBytes;
    private long partsBytes;
    private float[] quantOut = new float[0];
    private float[] quantLse = new float[0];
    private boolean closed;

    /** Attention over {@code context}'s stores, which must all be {@link CudaKiviHeadStore}s on {@code device}. */
    public CudaKiviLayerAttention(Device device, LayerContext context) {
        this.device = device;
        this.shape = context.shape();
        if (shape.groupSize() > KernelEmulator.MAX_GROUP) {
            throw new IllegalArgumentException("the CUDA kernels take GQA groups of at most " + KernelEmulator.MAX_GROUP
                    + " query heads, the model has " + shape.groupSize());
        }
        this.stores = new CudaKiviHeadStore[shape.kvHeads()];
        HeadStore[] hosts = new HeadStore[stores.length];
        HeadStore[] residuals = new HeadStore[stores.length];
        for (int h = 0; h < stores.length; h++) {
            if (!(context.store(h) instanceof CudaKiviHeadStore s)) {
                throw new IllegalArgumentException(
                        "KV head " + h + " of layer " + context.layer() + " is not a CudaKiviHeadStore: "
                                + context.store(h).getClass().getName());
            }
            stores[h] = s;
            hosts[h] = s.host();
            residuals[h] = s.residual();
        }
        this.layout = stores[0].layout();
        for (CudaKiviHeadStore s : stores) {
            if (!s.layout().equals(layout)) {
                throw new IllegalArgumentException(
                        "the layer's stores differ in layout: " + layout + ", " + s.layout());
            }
        }
        this.cpu = LayerAttention.cpu(
                new LayerContext(shape, context.layer(), hosts, context.pool()), AttentionKernels.get());
        this.residual = new CudaLayerAttention(
                device,
                new LayerContext(shape, context.layer(), residuals, context.pool()),
                CudaLayerAttention.DEFAULT_CHUNK);
        this.residualBatch = new LayerBatch(shape, 1);
    }

    @Override
    public boolean reportsScores() {
        return true;
    }

    @Override
    public void attend(LayerBatch b) {
        if (closed) {
            throw new IllegalStateException("layer attention is closed");
        }
        if (b.scoreAggregation() != null) {
            cpu.attend(b);
            return;
        }
        int tokens = b.tokens();
        int kvHeads = shape.kvHeads();
        int maxChunks = 1;
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < kvHeads; h++) {
                int v = b.visible(t, h);
                if (v < 0 || v > stores[h].count()) {
                    throw new IllegalArgumentException("token " + t + " sees " + v + " slots of KV head " + h
                            + "; the store holds " + stores[h].count());
                }
                maxChunks = Math.max(
                        maxChunks, KernelEmulator.chunks(Math.min(v, stores[h].quantizedTokens()), INT4_CHUNK));
            }
        }
        int qh = shape.queryHeads();
        int d = shape.headDim();
        int rows = tokens * qh;
        if (quantOut.length < rows * d) {
            quantOut = new float[rows * d];
            quantLse = new float[rows];
        }
        long perTokenPartials = 4L * qh * (d + 1) * maxChunks;
        int slice =
                (int) Math.max(1, Math.min(CudaLayerAttention.MAX_GRID_TOKENS, MAX_PARTIAL_BYTES / perTokenPartials));
        for (int t0 = 0; t0 < tokens; t0 += slice) {
            quantized(b, t0, Math.min(tokens, t0 + slice), maxChunks);
        }
        LayerBatch rb = residualBatch(b, tokens);
        residual.attend(rb, quantOut, quantLse);
    }

    private LayerBatch residualBatch(LayerBatch b, int tokens) {
        if (residualBatch.maxTokens() < tokens) {
            residualBatch = new LayerBatch(shape, Math.max(tokens, 2 * residualBatch.maxTokens()));
        }
        LayerBatch rb = residualBatch;
        rb.set(
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
            for (int h = 0; h < shape.kvHeads(); h++) {
                int v = b.visible(t, h);
                rb.setVisible(t, h, v - Math.min(v, stores[h].quantizedTokens()));
            }
        }
        return rb;
    }

    /** The quantized part of tokens {@code [t0, t1)} into {@link #quantOut} and {@link #quantLse}. */
    private void quantized(LayerBatch b, int t0, int t1, int maxChunks) {
        int kvHeads = shape.kvHeads();
        int d = shape.headDim();
        int qh = shape.queryHeads();
        int tokens = t1 - t0;
        int rows = tokens * qh;
        int row0 = t0 * qh;
        // Upload: [queries f32 rows*d][visible i32 tokens*kvHeads][group pointers i64 kvHeads]
        long visAt = align(4L * rows * d);
        long tableAt = align(visAt + 4L * tokens * kvHeads);
        long upNeed = tableAt + 8L * kvHeads;
        long lseAt = align(4L * rows * d);
        long downNeed = lseAt + 4L * rows;
        long partLseAt = align(4L * rows * maxChunks * d);
        long partsNeed = partLseAt + 4L * rows * maxChunks;
        ensureBuffers(upNeed, downNeed, partsNeed);
        device.synchronize();
        MemorySegment hu = hostUp.segment();
        MemorySegment.copy(b.queries(), b.queriesOffset() + row0 * d, hu, F32, 0, rows * d);
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < kvHeads; h++) {
                int v = b.visible(t0 + t, h);
                hu.set(
                        ValueLayout.JAVA_INT_UNALIGNED,
                        visAt + 4L * (t * kvHeads + h),
                        Math.min(v, stores[h].quantizedTokens()));
            }
        }
        for (int h = 0; h < kvHeads; h++) {
            hu.set(ValueLayout.JAVA_LONG_UNALIGNED, tableAt + 8L * h, stores[h].groupsPointer());
        }
        device.copyToDevice(up, hostUp, 0, upNeed);
        device.decodeInt4(
                up + tableAt,
                kvHeads,
                layout,
                up,
                up + visAt,
                parts,
                parts + partLseAt,
                tokens,
                shape.groupSize(),
                INT4_CHUNK,
                maxChunks,
                b.scale());
        device.combine(parts, parts + partLseAt, 0, 0, down, down + lseAt, rows, maxChunks, d);
        device.copyToHost(hostDown, 0, down, downNeed);
        device.synchronize();
        MemorySegment hd = hostDown.segment();
        MemorySegment.copy(hd, F32, 0, quantOut, row0 * d, rows * d);
        MemorySegment.copy(hd, F32, lseAt, quantLse, row0, rows);
    }

    private static long align(long x) {
        return (x + 255) & -256L;
    }

    private void ensureBuffers(long upNeed, long downNeed, long partsNeed) {
        if (upNeed > upBytes) {
            device.synchronize();
            if (hostUp != null) {
                device.freeHost(hostUp);
                device.free(up);
            }
            upBytes = Math.max(upNeed, 2 * upBytes);
            hostUp = device.allocHost(upBytes);
            up = device.malloc(upBytes);
        }
        if (downNeed > downBytes) {
            device.synchronize();
            if (hostDown != null) {
                device.freeHost(hostDown);
                device.free(down);
            }
            downBytes = Math.max(downNeed, 2 * downBytes);
            hostDown = device.allocHost(downBytes);
            down = device.malloc(downBytes);
        }
        if (partsNeed > partsBytes) {
            device.synchronize();
            if (parts != 0) {
                device.free(parts);
            }
            partsBytes = Math.max(partsNeed, 2 * partsBytes);
            parts = device.malloc(partsBytes);
        }
    }

    /** Device memory this source holds now (its buffers and the residual source's). */
    public long deviceBytes() {
        return upBytes + downBytes + partsBytes + residual.deviceBytes();
    }

    /** Frees the device and staging buffers. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.synchronize();
        if (hostUp != null) {
            device.freeHost(hostUp);
            device.free(up);
            hostUp = null;
        }
        if (hostDown != null) {
            device.freeHost(hostDown);
            device.free(down);
            hostDown = null;
        }
        if (parts != 0) {
            device.free(parts);
            parts = 0;
        }
        residual.close();
    }
}
