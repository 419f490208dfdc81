package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.quantization.CodecKernel;
import io.kvcache4j.quantization.KiviConfig;
import io.kvcache4j.quantization.KiviHeadStore;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.SlotSelection;

/**
 * KIVI 4-bit storage of one (layer, KV head) whose quantized groups live on a {@link Device}, where
 * {@code kv_decode_int4} attends them on the packed codes (Liu et al., "KIVI", ICML 2024).
 *
 * <p><b>Host side.</b> A {@link KiviHeadStore} with f32 scales is the store of record: it rounds
 * appended rows to f16, quantizes whole groups of {@code G} tokens once {@code R + G} are residual,
 * checks every compaction against granularity {@code G}, and serves {@link #attend} (score-reporting
 * passes, CPU tiers), {@link #readKey} and {@link #readValue}.
 *
 * <p><b>Device side.</b> The quantized groups, byte for byte the host store's ({@link
 * KiviHeadStore#copyGroup}: with f32 scales that is {@link KiviLayout}), back to back in one device
 * allocation grown by doubling; a group is uploaded once, when the host store quantizes it. The
 * residual (slots {@code [Q, count)}, exact f16) is a {@link CudaHeadStore}: appended rows are
 * rounded on the device by {@code kv_append_f16} exactly as the host rounds them, and the rows that
 * leave it for a group are dropped from its front by a device gather. A compaction (eviction)
 * re-uploads the groups from the first one it may have moved, and rebuilds the residual from the host
 * store's rows.
 *
 * <p><b>Bytes.</b> {@link #bytesHeld()} is the host store's bytes plus the device groups as allocated,
 * the residual store's bytes (device rows, staging, its own host mirror) and the pinned staging.
 *
 * <p>Driven by one thread at a time, like every store.
 */
public final class CudaKiviHeadStore implements HeadStore {
    private final Device device;
    private final KiviHeadStore host;
    private final KiviLayout layout;
    private final CudaHeadStore residual;
    private final int groupTokens;
    private final int headDim;

    private long groups;
    private int groupCapacity;
    /** Device groups {@code [0, uploaded)} equal the host store's. */
    private int uploaded;

    private Device.HostBuffer staging;
    private long stagingBytes;
    private int[] shift = new int[0];
    private float[] rowK = new float[0];
    private float[] rowV = new float[0];
    private int version;
    private boolean closed;

    /**
     * An empty store of {@code headDim} on {@code device}; {@code config} must have 4 bits, f32 scales
     * and groups of a multiple of 32 tokens (what the device kernel reads).
     *
     * @throws IllegalArgumentException naming the configuration value the kernel cannot read
     */
    public CudaKiviHeadStore(Device device, KiviConfig config, int headDim, int pageTokens, CodecKernel kernel) {
        this.device = java.util.Objects.requireNonNull(device, "device");
        this.layout = KiviLayout.of(config, headDim);
        if (headDim > KernelEmulator.MAX_HEAD_DIM_INT4) {
            throw new IllegalArgumentException("the int4 kernel takes head dimensions up to "
                    + KernelEmulator.MAX_HEAD_DIM_INT4 + ", was " + headDim);
        }
        this.host = new KiviHeadStore(config, headDim, pageTokens, kernel);
        this.residual = new CudaHeadStore(device, KvDType.F16, headDim, pageTokens);
        this.groupTokens = config.groupTokens();
        this.headDim = headDim;
    }

    /** The device layout of the groups. */
    public KiviLayout layout() {
        return layout;
    }

    /** Device pointer of group 0 (0 before the first group). */
    public long groupsPointer() {
        return groups;
    }

    /** Slots held as quantized groups on the device; the residual store holds the rest. */
    public int quantizedTokens() {
        return uploaded * groupTokens;
    }

    /** The exact f16 rows of slots {@code [quantizedTokens(), count())}, on the device. */
    public CudaHeadStore residual() {
        return residual;
    }

    /** The host store of record. */
    public KiviHeadStore host() {
        return host;
    }

    /** Changes whenever {@link #groupsPointer()} does. */
    public int version() {
        return version;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("store is closed");
        }
    }

    @Override
    public int count() {
        return host.count();
    }

    @Override
    public int granularity() {
        return host.granularity();
    }

    @Override
    public float maxMagnitude() {
        return host.maxMagnitude();
    }

    @Override
    public long bytesHeld() {
        return host.bytesHeld() + (long) groupCapacity * layout.groupBytes() + residual.bytesHeld() + stagingBytes;
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        ensureOpen();
        int q0 = host.quantizedTokens();
        int count0 = host.count();
        host.append(keys, keysOffset, values, valuesOffset, rowStride, tokens);
        int q1 = host.quantizedTokens();
        int count1 = host.count();
        // residual: slots [q0, count0) on the device, [q1, count1) wanted
        int drop = Math.min(q1, count0) - q0;
        dropResidualFront(drop);
        int firstNew = Math.max(q1, count0) - count0;
        if (firstNew < tokens) {
            residual.append(
                    keys,
                    keysOffset + firstNew * rowStride,
                    values,
                    valuesOffset + firstNew * rowStride,
                    rowStride,
                    count1 - Math.max(q1, count0));
        }
        uploadGroups();
    }

    private void dropResidualFront(int drop) {
        if (drop <= 0) {
            return;
        }
        int kept = residual.count() - drop;
        if (shift.length < kept) {
            shift = new int[Math.max(kept, 2 * shift.length)];
        }
        for (int j = 0; j < kept; j++) {
            shift[j] = drop + j;
        }
        residual.compact(0, shift, kept, kept);
    }

    /** Uploads the host store's groups {@code [uploaded, Q / G)}. */
    private void uploadGroups() {
        int target = host.quantizedTokens() / groupTokens;
        if (target <= uploaded) {
            uploaded = target;
            return;
        }
        long gb = layout.groupBytes();
        ensureGroupCapacity(target);
        int perCopy = (int) Math.max(1, Math.min(target - uploaded, (4L << 20) / gb));
        ensureStaging(perCopy * gb);
        for (int g = uploaded; g < target; g += perCopy) {
            int n = Math.min(perCopy, target - g);
            device.synchronize(); // the staging buffer may still feed the previous copy
            for (int i = 0; i < n; i++) {
                host.copyGroup(g + i, staging.segment(), i * gb);
            }
            device.copyToDevice(groups + g * gb, staging, 0, n * gb);
        }
        uploaded = target;
    }

    private void ensureGroupCapacity(int needed) {
        if (needed <= groupCapacity) {
            return;
        }
        long gb = layout.groupBytes();
        int cap = Math.max(needed, Math.max(64, groupCapacity * 2));
        long fresh = device.malloc(cap * gb);
        if (groups != 0) {
            if (uploaded > 0) {
                device.copyOnDevice(fresh, groups, uploaded * gb);
            }
            device.synchronize();
            device.free(groups);
        }
        groups = fresh;
        groupCapacity = cap;
        version++;
    }

    private void ensureStaging(long bytes) {
        if (bytes <= stagingBytes) {
            return;
        }
        if (staging != null) {
            device.synchronize();
            device.freeHost(staging);
            staging = null;
            stagingBytes = 0;
        }
        staging = device.allocHost(bytes);
        stagingBytes = bytes;
    }

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        ensureOpen();
        host.compact(from, sources, moved, newCount);
        // groups before 'from' (a group boundary) stayed; the rest may have moved
        uploaded = Math.min(uploaded, Math.min(from / groupTokens, host.quantizedTokens() / groupTokens));
        uploadGroups();
        rebuildResidual();
    }

    private void rebuildResidual() {
        residual.compact(0, new int[0], 0, 0);
        int q = host.quantizedTokens();
        int rows = host.count() - q;
        if (rows == 0) {
            return;
        }
        if (rowK.length < rows * headDim) {
            rowK = new float[rows * headDim];
            rowV = new float[rows * headDim];
        }
        for (int r = 0; r < rows; r++) {
            host.readKey(q + r, rowK, r * headDim);
            host.readValue(q + r, rowV, r * headDim);
        }
        residual.append(rowK, 0, rowV, 0, headDim, rows);
    }

    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        ensureOpen();
        host.attend(state, selection);
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        host.readKey(slot, dst, offset);
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        host.readValue(slot, dst, offset);
    }

    /** Frees the device groups, the staging buffer, the residual store and the host store. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.synchronize();
        if (groups != 0) {
            device.free(groups);
            groups = 0;
        }
        groupCapacity = 0;
        uploaded = 0;
        if (staging != null) {
            device.freeHost(staging);
            staging = null;
            stagingBytes = 0;
        }
        residual.close();
        host.close();
    }
}
