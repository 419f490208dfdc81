package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A layer's attention on the device: one {@code kv_decode_*} launch for every (token, KV head,
 * chunk) of the batch, one {@code kv_combine} launch for every (token, query head), as in
 * FlashDecoding (Dao et al., 2023): each head's visible range is cut into chunks, every chunk yields
 * a partial {@code (output, lse)} and the partials merge by log-sum-exp in chunk order. The chunk is
 * {@link #chunkTokens()} slots, or, with {@link #CHUNK_BY_LENGTH} (the default, {@link
 * #DEFAULT_CHUNK}), sized by each (token, KV head)'s own visible count ({@link
 * KernelEmulator#chunkFor}: 1,024 slots up to 32K visible, doubling up to 8,192 slots from 128K on).
 * Either way the split depends on the visible counts alone, so a token's result does not depend on
 * the other tokens of its batch. Measured on an H200 at 8 KV heads, group 4, d 128 with the
 * pipelined kernels: the best fixed chunks were 2,048 slots at 64K tokens and 8,192 at 1M (larger
 * chunks leave the GPU short of blocks at 64K, smaller ones pay per-block overhead at 1M), which is
 * what the by-length sizing picks.
 *
 * <p><b>Per batch.</b> A batch whose chunk partials would exceed 256 MiB (a long prefill) runs in
 * slices of consecutive tokens, each one decode and one combine launch. Queries, visible counts and (when a store moved) the table of row pointers go
 * up in one pinned staging buffer; outputs and log-sum-exps come back in another; the copies and
 * launches are queued on the device's stream and the call returns after one synchronisation.
 *
 * <p><b>Hybrid.</b> {@link #attend(LayerBatch, float[], float[])} merges a partial set computed
 * elsewhere (HGCA: dense attention on the GPU, sparse attention over CPU-resident entries) into the
 * combine launch ({@code kv_combine_hybrid}), as one more chunk after the device's.
 *
 * <p><b>Scores.</b> When the eviction policy wants per-key mass the batch runs on the CPU source over
 * the stores' host mirrors (the same rows), which reports it; so {@link #reportsScores()} is true.
 *
 * <p>Driven by the cache's thread. Allocates device and staging memory only when a batch is larger
 * than any before.
 */
public final class CudaLayerAttention implements LayerAttention, AutoCloseable {
    /** The {@code chunkTokens} that sizes chunks by each head's visible count ({@link KernelEmulator#chunkFor}). */
    public static final int CHUNK_BY_LENGTH = KernelEmulator.CHUNK_BY_LENGTH;

    /** The {@code chunkTokens} of the {@code cuda-*} stores: {@link #CHUNK_BY_LENGTH}. */
    public static final int DEFAULT_CHUNK = CHUNK_BY_LENGTH;

    private static final ValueLayout.OfFloat F32 = KernelEmulator.F32;
    /** Most query tokens in one launch (the grid's z dimension). */
    static final int MAX_GRID_TOKENS = 65_535;
    /** Default bound on the device bytes of one launch's chunk partials (a long prefill runs in slices). */
    static final long MAX_PARTIAL_BYTES = 256L << 20;

    private final Device device;
    private final ModelShape shape;
    private final DeviceRows[] stores;
    private final KvDType type;
    private final int chunkTokens;
    private boolean closed;
    private final LayerAttention cpu;
    private final int[] versions;
    /** Per token of the batch, its most chunks over the KV heads (grown, never shrunk). */
    private int[] tokenChunks = new int[1];
    /** Bound on one slice's partial bytes (tests lower it to exercise slicing). */
    long maxPartialBytes = MAX_PARTIAL_BYTES;

    private long table;
    private long up;
    private long upBytes;
    private long down;
    private long downBytes;
    private long parts;
    private long partsBytes;
    private Device.HostBuffer hostUp;
    private Device.HostBuffer hostDown;
    private long hostUpBytes;
    private long hostDownBytes;

    /** Attention over {@code context}'s stores, which must all be {@link CudaHeadStore}s on {@code device}. */
    public CudaLayerAttention(Device device, LayerContext context, int chunkTokens) {
        this(device, context.shape(), context.layer(), cudaStores(context), chunkTokens, cpuOverMirrors(context));
    }

    /**
     * Attention over rows on {@code device}, one {@link DeviceRows} per KV head, all of one type; {@code
     * cpu} serves the batches that want per-key scores (null: such batches are refused).
     */
    public CudaLayerAttention(
            Device device, ModelShape shape, int layer, DeviceRows[] rows, int chunkTokens, LayerAttention cpu) {
        if (chunkTokens != KernelEmulator.CHUNK_BY_LENGTH && (chunkTokens < 128 || chunkTokens % 128 != 0)) {
            throw new IllegalArgumentException(
                    "chunkTokens must be a positive multiple of 128, or 0 for chunks sized by each head's visible count,"
                            + " was " + chunkTokens);
        }
        if (shape.groupSize() > KernelEmulator.MAX_GROUP) {
            throw new IllegalArgumentException("the CUDA kernels take GQA groups of at most " + KernelEmulator.MAX_GROUP
                    + " query heads, the model has " + shape.groupSize());
        }
        if (rows.length != shape.kvHeads()) {
            throw new IllegalArgumentException(
                    "rows must hold one entry per KV head (" + shape.kvHeads() + "), had " + rows.length);
        }
        for (int h = 0; h < rows.length; h++) {
            if (rows[h].type() != rows[0].type()) {
                throw new IllegalArgumentException("KV head " + h + " of layer " + layer + " holds " + rows[h].type()
                        + " rows, KV head 0 " + rows[0].type() + ": one layer takes one type");
            }
        }
        this.device = device;
        this.shape = shape;
        this.stores = rows.clone();
        this.type = rows[0].type();
        this.chunkTokens = chunkTokens;
        this.cpu = cpu;
        this.versions = new int[stores.length];
        java.util.Arrays.fill(versions, -1);
    }

    private static DeviceRows[] cudaStores(LayerContext context) {
        DeviceRows[] rows = new DeviceRows[context.shape().kvHeads()];
        for (int h = 0; h < rows.length; h++) {
            if (!(context.store(h) instanceof CudaHeadStore s)) {
                throw new IllegalArgumentException(
                        "KV head " + h + " of layer " + context.layer() + " is not a CudaHeadStore: "
                                + context.store(h).getClass().getName());
            }
            rows[h] = s;
        }
        return rows;
    }

    /** kv-api's CPU source over the stores' host mirrors; null when a store lives on the device only. */
    private static LayerAttention cpuOverMirrors(LayerContext context) {
        io.kvcache4j.store.HeadStore[] m =
                new io.kvcache4j.store.HeadStore[context.shape().kvHeads()];
        for (int h = 0; h < m.length; h++) {
            if (!(context.store(h) instanceof CudaHeadStore s) || s.mirror() == null) {
                return null;
            }
            m[h] = s.mirror();
        }
        return LayerAttention.cpu(
                new LayerContext(context.shape(), context.layer(), m, context.pool()), AttentionKernels.get());
    }

    /** Slots per chunk of the split; {@link KernelEmulator#CHUNK_BY_LENGTH}: sized per head by its visible count. */
    public int chunkTokens() {
        return chunkTokens;
    }

    @Override
    public boolean reportsScores() {
        return cpu != null;
    }

    @Override
    public void attend(LayerBatch batch) {
        ensureOpen();
        if (batch.scoreAggregation() != null) {
            if (cpu == null) {
                throw new IllegalStateException(
                        "per-key scores need a CPU pass over host rows; these rows live on the device only");
            }
            cpu.attend(batch);
            return;
        }
        attend(batch, null, null);
    }

    /**
     * Runs the batch and merges, per (token, query head), one more partial: {@code extraOut[(t·QH +
     * qh)·D ..]} with log-sum-exp {@code extraLse[t·QH + qh]} ({@code −∞}: nothing). Null arrays: no
     * extra partial.
     */
    public void attend(LayerBatch b, float[] extraOut, float[] extraLse) {
        ensureOpen();
        int tokens = b.tokens();
        int kvHeads = shape.kvHeads();
        if (tokenChunks.length < tokens) {
            tokenChunks = new int[Math.max(tokens, 2 * tokenChunks.length)];
        }
        int[] chunksOf = tokenChunks;
        for (int t = 0; t < tokens; t++) {
            chunksOf[t] = 1;
            for (int h = 0; h < kvHeads; h++) {
                int v = b.visible(t, h);
                if (v < 0 || v > stores[h].count()) {
                    throw new IllegalArgumentException("token " + t + " sees " + v + " slots of KV head " + h
                            + "; the store holds " + stores[h].count());
                }
                chunksOf[t] = Math.max(chunksOf[t], KernelEmulator.chunks(v, chunkTokens));
            }
        }
        // Slices of tokens whose chunk partials fit in maxPartialBytes (and the grid's z limit).
        long perChunkRow = 4L * shape.queryHeads() * (shape.headDim() + 1);
        for (int t0 = 0; t0 < tokens; ) {
            int t1 = t0;
            int sliceChunks = 1;
            while (t1 < tokens && t1 - t0 < MAX_GRID_TOKENS) {
                int m = Math.max(sliceChunks, chunksOf[t1]);
                if (t1 > t0 && (long) (t1 - t0 + 1) * m * perChunkRow > maxPartialBytes) {
                    break;
                }
                sliceChunks = m;
                t1++;
            }
            attendSlice(b, t0, t1, sliceChunks, extraOut, extraLse);
            t0 = t1;
        }
    }

    /** Tokens {@code [t0, t1)} of the batch in one decode and one combine launch. */
    private void attendSlice(LayerBatch b, int t0, int t1, int maxChunks, float[] extraOut, float[] extraLse) {
        int tokens = t1 - t0;
        int kvHeads = shape.kvHeads();
        int g = shape.groupSize();
        int d = shape.headDim();
        int qh = shape.queryHeads();
        int rows = tokens * qh;
        boolean extra = extraOut != null;
        int row0 = t0 * qh;
        // Upload layout: [queries f32 rows*d][visible i32 tokens*kvHeads][extraOut rows*d][extraLse rows]
        long qBytes = 4L * rows * d;
        long visAt = align(qBytes);
        long extraAt = align(visAt + 4L * tokens * kvHeads);
        long extraLseAt = align(extraAt + (extra ? 4L * rows * d : 0));
        long upNeed = extraLseAt + (extra ? 4L * rows : 0);
        long outBytes = 4L * rows * d;
        long lseAt = align(outBytes);
        long downNeed = lseAt + 4L * rows;
        long partLseAt = align(4L * rows * maxChunks * d);
        long partsNeed = partLseAt + 4L * rows * maxChunks;
        ensureBuffers(upNeed, downNeed, partsNeed);
        device.synchronize();
        MemorySegment hu = hostUp.segment();
        MemorySegment.copy(b.queries(), b.queriesOffset() + row0 * d, hu, F32, 0, rows * d);
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < kvHeads; h++) {
                hu.set(ValueLayout.JAVA_INT_UNALIGNED, visAt + 4L * (t * kvHeads + h), b.visible(t0 + t, h));
            }
        }
        if (extra) {
            MemorySegment.copy(extraOut, row0 * d, hu, F32, extraAt, rows * d);
            MemorySegment.copy(extraLse, row0, hu, F32, extraLseAt, rows);
        }
        refreshTable(hu, upNeed);
        device.copyToDevice(up, hostUp, 0, upNeed);
        device.decodeExact(
                type,
                table,
                kvHeads,
                up,
                up + visAt,
                parts,
                parts + partLseAt,
                tokens,
                g,
                d,
                chunkTokens,
                maxChunks,
                b.scale());
        device.combine(
                parts,
                parts + partLseAt,
                extra ? up + extraAt : 0,
                extra ? up + extraLseAt : 0,
                down,
                down + lseAt,
                rows,
                maxChunks,
                d);
        device.copyToHost(hostDown, 0, down, downNeed);
        device.synchronize();
        MemorySegment hd = hostDown.segment();
        MemorySegment.copy(hd, F32, 0, b.out(), b.outOffset() + row0 * d, rows * d);
        if (b.lse() != null) {
            MemorySegment.copy(hd, F32, lseAt, b.lse(), b.lseOffset() + row0, rows);
        }
    }

    private static long align(long x) {
        return (x + 255) & -256L;
    }

    /** Re-uploads the row-pointer table when a store's rows moved (growth), through the end of the upload buffer. */
    private void refreshTable(MemorySegment hu, long scratchAt) {
        boolean stale = false;
        for (int h = 0; h < stores.length; h++) {
            stale |= versions[h] != stores[h].version();
        }
        if (!stale) {
            return;
        }
        long at = align(scratchAt);
        for (int h = 0; h < stores.length; h++) {
            hu.set(ValueLayout.JAVA_LONG_UNALIGNED, at + 16L * h, stores[h].keysPointer());
            hu.set(ValueLayout.JAVA_LONG_UNALIGNED, at + 16L * h + 8, stores[h].valuesPointer());
            versions[h] = stores[h].version();
        }
        device.copyToDevice(table, hostUp, at, 16L * stores.length);
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("layer attention is closed");
        }
    }

    private void ensureBuffers(long upNeed, long downNeed, long partsNeed) {
        if (table == 0) {
            table = device.malloc(16L * stores.length);
        }
        long hostUpNeed = align(upNeed) + 16L * stores.length;
        if (hostUpNeed > hostUpBytes) {
            device.synchronize();
            if (hostUp != null) {
                device.freeHost(hostUp);
            }
            hostUpBytes = Math.max(hostUpNeed, 2 * hostUpBytes);
            hostUp = device.allocHost(hostUpBytes);
        }
        if (downNeed > hostDownBytes) {
            device.synchronize();
            if (hostDown != null) {
                device.freeHost(hostDown);
            }
            hostDownBytes = Math.max(downNeed, 2 * hostDownBytes);
            hostDown = device.allocHost(hostDownBytes);
        }
        if (upNeed > upBytes) {
            if (up != 0) {
                device.free(up);
            }
            upBytes = Math.max(upNeed, 2 * upBytes);
            up = device.malloc(upBytes);
        }
        if (downNeed > downBytes) {
            if (down != 0) {
                device.free(down);
            }
            downBytes = Math.max(downNeed, 2 * downBytes);
            down = device.malloc(downBytes);
        }
        if (partsNeed > partsBytes) {
            if (parts != 0) {
                device.free(parts);
            }
            partsBytes = Math.max(partsNeed, 2 * partsBytes);
            parts = device.malloc(partsBytes);
        }
    }

    /** Device bytes of this layer's batch buffers (row-pointer table, uploads, partials, outputs). */
    public long deviceBytes() {
        return (table == 0 ? 0 : 16L * stores.length) + upBytes + downBytes + partsBytes;
    }

    /** Frees the device and staging buffers. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (long p : new long[] {table, up, down, parts}) {
            if (p != 0) {
                device.free(p);
            }
        }
        table = up = down = parts = 0;
        upBytes = downBytes = partsBytes = 0;
        if (hostUp != null) {
            device.freeHost(hostUp);
            hostUp = null;
        }
        if (hostDown != null) {
            device.freeHost(hostDown);
            hostDown = null;
        }
        hostUpBytes = hostDownBytes = 0;
    }
}
