package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Exact f16 or bf16 storage of one (layer, KV head) resident on a {@link Device}, with a host mirror
 * (or without one: {@link #deviceOnly}).
 *
 * <p><b>Device memory.</b> One allocation of {@code capacity} rows of keys then {@code capacity}
 * rows of values, both row-major {@code [slot][headDim]} (what {@code kv_decode_*} reads), grown by
 * doubling (a device-to-device copy of the held rows); a device staging buffer of f32 rows for
 * appends and an int buffer plus a scratch block for compaction, grown likewise. Appends stage the f32
 * rows in pinned host memory, copy them asynchronously and round them on the device ({@code
 * kv_append_*}); compaction gathers the kept rows into the scratch block ({@code kv_gather_rows}) and
 * copies them back.
 *
 * <p><b>Host mirror.</b> A {@link PagedHeadStore} of the same type holds the same rounded rows: it
 * serves {@link #attend} (CPU tiers, sparse retrieval, score-reporting passes), {@link #readKey} and
 * {@link #readValue} without reading the device, and it is what HGCA-style hybrid attention computes
 * its CPU part on.
 *
 * <p><b>Bytes.</b> {@link #bytesHeld()} is the mirror's bytes plus {@link #deviceBytes()} (every
 * device allocation of this store, exactly as allocated) plus the pinned staging bytes.
 *
 * <p>Driven by one thread at a time, like every store.
 */
public final class CudaHeadStore implements HeadStore, DeviceRows {
    private static final ValueLayout.OfFloat F32 = KernelEmulator.F32;

    private final Device device;
    private final KvDType type;
    private final int headDim;
    private final long rowBytes;
    /** The host copy of the rows, or null for a device-only store. */
    private final PagedHeadStore mirror;

    private final int pageTokens;

    private long base;
    private int capacity;
    private int count;
    private long staging;
    private long stagingBytes;
    private long scratch;
    private long scratchBytes;
    private Device.HostBuffer host;
    private long hostBytes;
    /** Incremented whenever the device addresses of the rows change. */
    private int version;

    private boolean closed;

    /** Creates an empty store; the device memory is allocated on the first append. */
    public CudaHeadStore(Device device, KvDType type, int headDim, int pageTokens) {
        this(device, type, headDim, pageTokens, true);
    }

    /**
     * An empty store whose rows live on the device only, without the host mirror: for a caller that
     * keeps the same rows on the host itself (a split store's fast tier on the GPU). {@link #attend},
     * {@link #readKey} and {@link #readValue} then read the rows back from the device, and a layer
     * source over such stores cannot report per-key scores.
     */
    public static CudaHeadStore deviceOnly(Device device, KvDType type, int headDim) {
        return new CudaHeadStore(device, type, headDim, io.kvcache4j.api.KvCacheBuilder.DEFAULT_PAGE_TOKENS, false);
    }

    private CudaHeadStore(Device device, KvDType type, int headDim, int pageTokens, boolean hostMirror) {
        if (type == KvDType.F32) {
            throw new IllegalArgumentException("CUDA stores keep f16 or bf16 rows, not f32");
        }
        if (headDim < 8 || headDim % 8 != 0 || headDim > KernelEmulator.MAX_HEAD_DIM) {
            throw new IllegalArgumentException("headDim must be a multiple of 8 in [8, " + KernelEmulator.MAX_HEAD_DIM
                    + "] for the CUDA kernels, was " + headDim);
        }
        this.device = device;
        this.type = type;
        this.headDim = headDim;
        this.rowBytes = (long) headDim * type.bytes();
        this.mirror = hostMirror ? new PagedHeadStore(type, headDim, pageTokens, AttentionKernels.get()) : null;
        this.pageTokens = pageTokens;
    }

    /** The storage type of the rows (f16 or bf16). */
    @Override
    public KvDType type() {
        return type;
    }

    /** Elements per key or value row. */
    public int headDim() {
        return headDim;
    }

    /** Device address of key row 0 (0 before the first append). */
    @Override
    public long keysPointer() {
        return base;
    }

    /** Device address of value row 0 (0 before the first append). */
    @Override
    public long valuesPointer() {
        return base == 0 ? 0 : base + capacity * rowBytes;
    }

    /** Changes whenever {@link #keysPointer()} or {@link #valuesPointer()} change. */
    @Override
    public int version() {
        return version;
    }

    /** Rows the device allocation has room for. */
    public int capacity() {
        return capacity;
    }

    /** Device bytes this store holds now: rows, staging and scratch, as allocated. */
    public long deviceBytes() {
        return (base == 0 ? 0 : 2L * capacity * rowBytes) + stagingBytes + scratchBytes;
    }

    /** The host mirror (same rows, same rounding); null for a {@link #deviceOnly} store. */
    public PagedHeadStore mirror() {
        return mirror;
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public float maxMagnitude() {
        return type.maxFinite();
    }

    @Override
    public long bytesHeld() {
        return (mirror == null ? 0 : mirror.bytesHeld()) + deviceBytes() + hostBytes;
    }

    private void ensureCapacity(int rows) {
        if (rows <= capacity) {
            return;
        }
        int cap = Math.max(rows, Math.max(256, capacity * 2));
        long fresh = device.malloc(2L * cap * rowBytes);
        if (base != 0) {
            if (count > 0) {
                device.copyOnDevice(fresh, base, count * rowBytes);
                device.copyOnDevice(fresh + cap * rowBytes, valuesPointer(), count * rowBytes);
            }
            device.free(base);
        }
        base = fresh;
        capacity = cap;
        version++;
    }

    private void ensureHost(long bytes) {
        if (bytes <= hostBytes) {
            return;
        }
        device.synchronize();
        if (host != null) {
            device.freeHost(host);
        }
        hostBytes = Math.max(bytes, hostBytes * 2);
        host = device.allocHost(hostBytes);
    }

    private void ensureStaging(long bytes) {
        if (bytes <= stagingBytes) {
            return;
        }
        if (staging != 0) {
            device.free(staging);
        }
        stagingBytes = Math.max(bytes, stagingBytes * 2);
        staging = device.malloc(stagingBytes);
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        ensureOpen();
        if (mirror != null) {
            mirror.append(keys, keysOffset, values, valuesOffset, rowStride, tokens);
        } else if (tokens < 0) {
            throw new IllegalArgumentException("tokens must be >= 0, was " + tokens);
        }
        long n = (long) tokens * headDim;
        ensureCapacity(count + tokens);
        ensureHost(8 * n);
        ensureStaging(8 * n);
        device.synchronize(); // the staging buffer may still feed an earlier copy
        MemorySegment h = host.segment();
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < headDim; i++) {
                h.set(F32, 4L * ((long) t * headDim + i), keys[keysOffset + t * rowStride + i]);
                h.set(F32, 4L * (n + (long) t * headDim + i), values[valuesOffset + t * rowStride + i]);
            }
        }
        device.copyToDevice(staging, host, 0, 8 * n);
        device.append(type, staging, tokens, headDim, base, valuesPointer(), count);
        count += tokens;
    }

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        ensureOpen();
        if (mirror != null) {
            mirror.compact(from, sources, moved, newCount);
        } else {
            checkCompact(from, sources, moved, newCount);
        }
        if (moved > 0) {
            long rows = moved * rowBytes;
            long need = 4L * moved + rows;
            ensureHost(4L * moved);
            if (need > scratchBytes) {
                if (scratch != 0) {
                    device.free(scratch);
                }
                scratchBytes = Math.max(need, scratchBytes * 2);
                scratch = device.malloc(scratchBytes);
            }
            device.synchronize();
            MemorySegment h = host.segment();
            for (int j = 0; j < moved; j++) {
                h.set(ValueLayout.JAVA_INT_UNALIGNED, 4L * j, sources[j]);
            }
            long idx = scratch;
            long rowsAt = scratch + ((4L * moved + 255) & -256L);
            if (rowsAt + rows > scratch + scratchBytes) {
                device.free(scratch);
                scratchBytes = ((4L * moved + 255) & -256L) + rows;
                scratch = device.malloc(scratchBytes);
                idx = scratch;
                rowsAt = scratch + ((4L * moved + 255) & -256L);
            }
            device.copyToDevice(idx, host, 0, 4L * moved);
            device.gather(base, rowsAt, idx, moved, headDim);
            device.copyOnDevice(base + from * rowBytes, rowsAt, rows);
            device.gather(valuesPointer(), rowsAt, idx, moved, headDim);
            device.copyOnDevice(valuesPointer() + from * rowBytes, rowsAt, rows);
        }
        count = newCount;
    }

    private void checkCompact(int from, int[] sources, int moved, int newCount) {
        if (from < 0 || moved < 0 || from + moved > newCount || newCount > count) {
            throw new IllegalArgumentException("compact(from " + from + ", moved " + moved + ", newCount " + newCount
                    + ") out of range for " + count + " slots");
        }
        for (int j = 0; j < moved; j++) {
            if (sources[j] < 0 || sources[j] >= count) {
                throw new IllegalArgumentException(
                        "compact: source " + sources[j] + " out of range [0, " + count + ")");
            }
        }
    }

    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        ensureOpen();
        if (mirror != null) {
            mirror.attend(state, selection);
            return;
        }
        // device only: the rows read back into a host store of the same type, then attended there
        try (PagedHeadStore rows = hostRows()) {
            rows.attend(state, selection);
        }
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        if (mirror != null) {
            mirror.readKey(slot, dst, offset);
        } else {
            readRow(slot, false, dst, offset);
        }
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        if (mirror != null) {
            mirror.readValue(slot, dst, offset);
        } else {
            readRow(slot, true, dst, offset);
        }
    }

    private void readRow(int slot, boolean value, float[] dst, int offset) {
        ensureOpen();
        java.util.Objects.checkIndex(slot, count);
        java.util.Objects.checkFromIndexSize(offset, headDim, dst.length);
        ensureHost(rowBytes);
        device.synchronize();
        device.copyToHost(host, 0, (value ? valuesPointer() : base) + slot * rowBytes, rowBytes);
        device.synchronize();
        MemorySegment h = host.segment();
        for (int i = 0; i < headDim; i++) {
            dst[offset + i] = KernelEmulator.decode(type, h.get(KernelEmulator.I16, 2L * i));
        }
    }

    /** The rows {@code [0, count)} read back from the device into a new host store. */
    private PagedHeadStore hostRows() {
        short[] raw = downloadRows();
        PagedHeadStore rows = new PagedHeadStore(type, headDim, pageTokens, AttentionKernels.get());
        float[] k = new float[headDim];
        float[] v = new float[headDim];
        long n = (long) count * headDim;
        for (int s = 0; s < count; s++) {
            for (int i = 0; i < headDim; i++) {
                k[i] = KernelEmulator.decode(type, raw[(int) ((long) s * headDim + i)]);
                v[i] = KernelEmulator.decode(type, raw[(int) (n + (long) s * headDim + i)]);
            }
            rows.append(k, 0, v, 0, headDim, 1);
        }
        return rows;
    }

    /** Reads rows {@code [0, count)} back from the device: keys then values, raw 16-bit elements (tests). */
    public short[] downloadRows() {
        ensureOpen();
        long bytes = count * rowBytes;
        short[] out = new short[(int) (2 * count * (long) headDim)];
        if (count == 0) {
            return out;
        }
        ensureHost(2 * bytes);
        device.synchronize();
        device.copyToHost(host, 0, base, bytes);
        device.copyToHost(host, bytes, valuesPointer(), bytes);
        device.synchronize();
        MemorySegment.copy(host.segment(), ValueLayout.JAVA_SHORT_UNALIGNED, 0, out, 0, out.length);
        return out;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("store is closed");
        }
    }

    /** Frees the device memory, the staging buffers and the mirror. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.synchronize();
        if (base != 0) {
            device.free(base);
            base = 0;
        }
        if (staging != 0) {
            device.free(staging);
            staging = 0;
        }
        if (scratch != 0) {
            device.free(scratch);
            scratch = 0;
        }
        if (host != null) {
            device.freeHost(host);
            host = null;
        }
        capacity = 0;
        stagingBytes = 0;
        scratchBytes = 0;
        hostBytes = 0;
        count = 0;
        if (mirror != null) {
            mirror.close();
        }
    }
}
