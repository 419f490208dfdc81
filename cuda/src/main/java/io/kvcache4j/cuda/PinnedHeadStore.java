package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * Exact f16 or bf16 rows of one (layer, KV head) in pinned (page-locked) host memory of a {@link
 * Device}: the slow tier of head-wise offload on a GPU. The rows have the device stores' layout,
 * {@code capacity} key rows then (in a second buffer) {@code capacity} value rows, each row-major
 * {@code [slot][headDim]}, so that any range of them goes to the device in two asynchronous copies
 * ({@link #transfer}) and the decode kernels read the copy as they read a {@link CudaHeadStore}.
 *
 * <p>Rows are rounded on the host by the device's own rounding ({@link KernelEmulator#encode}, what
 * {@code kv_append_*} computes), so a copy holds exactly the bits a {@link CudaHeadStore} appended
 * the same values would hold.
 *
 * <p><b>Transfers in flight.</b> A caller that queues a {@link #transfer} names the event it records
 * after it; growth, {@link #compact} and {@link #close} wait for that event before they move or
 * rewrite rows. Appends write only rows past the ones any transfer reads. {@link #generation()}
 * changes on every compaction, so a copy taken before one is known to be stale.
 *
 * <p><b>CPU passes.</b> {@link #attend} (score-reporting and other CPU passes) attends a host copy
 * in {@link PagedHeadStore}'s layout and page size, built on the first such call and then kept in
 * step (rows appended since are added; a compaction rebuilds it), so its results are the exact store's
 * bits. A cache whose passes all run on the device never builds it. {@link #readKey}/{@link
 * #readValue} read the pinned rows in place.
 *
 * <p><b>Bytes.</b> {@link #bytesHeld()} is the pinned bytes of both buffers, exactly as allocated,
 * plus the host copy's when it exists.
 * Driven by one thread at a time, like every store.
 */
public final class PinnedHeadStore implements HeadStore {
    private static final ValueLayout.OfShort I16 = KernelEmulator.I16;

    private final Device device;
    private final KvDType type;
    private final int headDim;
    private final long rowBytes;
    private final int pageTokens;
    private Device.HostBuffer keys;
    private Device.HostBuffer values;
    private int capacity;
    private int count;
    private int generation;
    /** The event recorded after the last transfer that reads these rows, or null. */
    private Device.Event busy;

    /** The host copy CPU passes attend, or null; valid for {@link #cpuGeneration}. */
    private PagedHeadStore cpu;

    private int cpuGeneration;
    private final float[] keyRow;
    private final float[] valueRow;
    private boolean closed;

    /**
     * An empty store on {@code device}; pinned memory is allocated on the first append. {@code
     * pageTokens} is the page size of the temporary store that CPU passes attend.
     */
    public PinnedHeadStore(Device device, KvDType type, int headDim, int pageTokens) {
        this.device = Objects.requireNonNull(device, "device");
        if (type != KvDType.F16 && type != KvDType.BF16) {
            throw new IllegalArgumentException("pinned stores keep f16 or bf16 rows, not " + type);
        }
        if (headDim < 8 || headDim % 8 != 0 || headDim > KernelEmulator.MAX_HEAD_DIM) {
            throw new IllegalArgumentException("headDim must be a multiple of 8 in [8, " + KernelEmulator.MAX_HEAD_DIM
                    + "] for the CUDA kernels, was " + headDim);
        }
        PagedHeadStore.checkPageTokens(pageTokens);
        this.type = type;
        this.headDim = headDim;
        this.rowBytes = (long) headDim * type.bytes();
        this.pageTokens = pageTokens;
        this.keyRow = new float[headDim];
        this.valueRow = new float[headDim];
    }

    public KvDType type() {
        return type;
    }

    public int headDim() {
        return headDim;
    }

    /** Bytes of one key or value row. */
    public long rowBytes() {
        return rowBytes;
    }

    /** Changes on every {@link #compact}: a copy of the rows taken under another generation is stale. */
    public int generation() {
        return generation;
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
        return 2L * capacity * rowBytes + (cpu == null ? 0 : cpu.bytesHeld());
    }

    /**
     * Queues on {@code device}'s transfer stream the copy of rows {@code [from, to)} to {@code
     * dstKeys + from·rowBytes} and {@code dstValues + from·rowBytes}; the caller records {@code
     * recordedAfter} on the transfer stream after it (and before anything else changes these rows).
     */
    public void transfer(long dstKeys, long dstValues, int from, int to, Device.Event recordedAfter) {
        ensureOpen();
        if (from < 0 || from > to || to > count) {
            throw new IllegalArgumentException(
                    "transfer of rows [" + from + ", " + to + ") out of range for " + count + " rows");
        }
        Objects.requireNonNull(recordedAfter, "recordedAfter");
        if (to == from) {
            return;
        }
        long at = from * rowBytes;
        long bytes = (to - from) * rowBytes;
        device.transferToDevice(dstKeys + at, keys, at, bytes);
        device.transferToDevice(dstValues + at, values, at, bytes);
        busy = recordedAfter;
    }

    /** Waits for the last transfer that reads these rows. */
    private void idle() {
        Device.Event e = busy;
        if (e != null) {
            device.awaitOnHost(e);
            busy = null;
        }
    }

    private void ensureCapacity(int rows) {
        if (rows <= capacity) {
            return;
        }
        // rows plus an eighth, in 256-row steps: pinned memory stays within ~1.13x of the rows held, and a
        // decode step regrows (one host copy of the rows) every rows/8 tokens
        int cap = (int) Math.min(Integer.MAX_VALUE, ((long) rows + rows / 8 + 255) & -256L);
        Device.HostBuffer k = device.allocHost(cap * rowBytes);
        Device.HostBuffer v = device.allocHost(cap * rowBytes);
        if (keys != null) {
            idle();
            MemorySegment.copy(keys.segment(), 0, k.segment(), 0, count * rowBytes);
            MemorySegment.copy(values.segment(), 0, v.segment(), 0, count * rowBytes);
            device.freeHost(keys);
            device.freeHost(values);
        }
        keys = k;
        values = v;
        capacity = cap;
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        ensureOpen();
        if (tokens < 0) {
            throw new IllegalArgumentException("tokens must be >= 0, was " + tokens);
        }
        if (tokens == 0) {
            return;
        }
        long last = (long) (tokens - 1) * rowStride;
        Objects.checkFromIndexSize(keysOffset, (int) Math.min(Integer.MAX_VALUE, last + headDim), keys.length);
        Objects.checkFromIndexSize(valuesOffset, (int) Math.min(Integer.MAX_VALUE, last + headDim), values.length);
        ensureCapacity(count + tokens);
        MemorySegment k = this.keys.segment();
        MemorySegment v = this.values.segment();
        for (int t = 0; t < tokens; t++) {
            long row = (count + t) * rowBytes;
            int ks = keysOffset + t * rowStride;
            int vs = valuesOffset + t * rowStride;
            for (int i = 0; i < headDim; i++) {
                k.set(I16, row + 2L * i, KernelEmulator.encode(type, keys[ks + i]));
                v.set(I16, row + 2L * i, KernelEmulator.encode(type, values[vs + i]));
            }
        }
        count += tokens;
    }

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        ensureOpen();
        if (from < 0 || moved < 0 || from + moved > newCount || newCount > count) {
            throw new IllegalArgumentException("compact(from " + from + ", moved " + moved + ", newCount " + newCount
                    + ") out of range for " + count + " slots");
        }
        for (int j = 0; j < moved; j++) {
            if (sources[j] < from + j || sources[j] >= count) {
                throw new IllegalArgumentException("compact: source " + sources[j] + " of slot " + (from + j)
                        + " out of range [" + (from + j) + ", " + count + ")");
            }
        }
        idle();
        MemorySegment k = keys == null ? null : keys.segment();
        MemorySegment v = values == null ? null : values.segment();
        for (int j = 0; j < moved; j++) {
            int s = sources[j];
            if (s != from + j) {
                MemorySegment.copy(k, s * rowBytes, k, (from + j) * rowBytes, rowBytes);
                MemorySegment.copy(v, s * rowBytes, v, (from + j) * rowBytes, rowBytes);
            }
        }
        count = newCount;
        generation++;
    }

    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        ensureOpen();
        if (cpu != null && cpuGeneration != generation) {
            cpu.close();
            cpu = null;
        }
        if (cpu == null) {
            cpu = new PagedHeadStore(type, headDim, pageTokens, AttentionKernels.get());
            cpuGeneration = generation;
        }
        for (int s = cpu.count(); s < count; s++) {
            readKey(s, keyRow, 0);
            readValue(s, valueRow, 0);
            cpu.append(keyRow, 0, valueRow, 0, headDim, 1);
        }
        cpu.attend(state, selection);
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        read(keys, slot, dst, offset);
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        read(values, slot, dst, offset);
    }

    private void read(Device.HostBuffer rows, int slot, float[] dst, int offset) {
        ensureOpen();
        Objects.checkIndex(slot, count);
        Objects.checkFromIndexSize(offset, headDim, dst.length);
        MemorySegment m = rows.segment();
        long at = slot * rowBytes;
        for (int i = 0; i < headDim; i++) {
            dst[offset + i] = KernelEmulator.decode(type, m.get(I16, at + 2L * i));
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("store is closed");
        }
    }

    /** Waits for transfers still reading the rows, then frees the pinned memory. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        idle();
        if (keys != null) {
            device.freeHost(keys);
            device.freeHost(values);
            keys = values = null;
        }
        if (cpu != null) {
            cpu.close();
            cpu = null;
        }
        capacity = 0;
        count = 0;
    }
}
