package io.kvcache4j.hybrid;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.cuda.Device;
import io.kvcache4j.cuda.DeviceRows;
import io.kvcache4j.cuda.PinnedHeadStore;
import io.kvcache4j.store.HeadStore;

/**
 * The per-cache offload schedule of {@link CudaHeadInferFactory}: two staging slots in device memory,
 * each able to hold one layer's offloaded heads, used in turn (HeadInfer's ping-pong). Before a layer
 * attends, its offloaded heads' rows are in one slot: copied there by the prefetch that the previous
 * layer started, topped up with the rows appended since (the new tokens), or copied whole when the
 * prefetch was for another layer or a compaction made it stale. The launch stream waits for the slot's
 * event, then the next layer's prefetch is queued into the other slot on the transfer stream, where it
 * runs while this layer's kernels and the CPU work up to the next layer run.
 *
 * <p><b>Why the slots never race.</b> Every layer's attention ends with the launch stream drained
 * ({@link io.kvcache4j.cuda.CudaLayerAttention} synchronizes before it returns), so when a prefetch is
 * queued into a slot, the last launch that read that slot has completed; transfers run in the order
 * they are queued, and a launch waits for the event recorded after the last transfer into its slot.
 * The pinned stores wait for their last transfer before they move or rewrite rows.
 *
 * <p>A slot's buffer for a head grows to the head's rows plus a sixteenth (its staged rows are then
 * copied again). The
 * schedule frees its device buffers and events when the last layer source closes. Driven by the
 * cache's thread.
 */
final class CudaHeadInferSchedule {
    private final Device device;
    private final ModelShape shape;
    private final long rowBytes;
    /** Per layer and KV head: the pinned store of an offloaded head, null for a resident one. */
    private final PinnedHeadStore[][] offloaded;
    /** Per layer and KV head: the device rows a layer's attention reads (resident store or staged view). */
    private final DeviceRows[][] rows;

    private final boolean prefetch;
    private final Slot[] slots = new Slot[2];
    private int prefetchedLayer = -1;
    private int prefetchSlot = -1;
    private int openLayers;
    private boolean closed;
    private long prefetchedHeads;
    private long wholeCopies;
    private long bytesTransferred;

    /** One layer's worth of device buffers: per KV head, {@code capacity} key rows then as many value rows. */
    private final class Slot {
        final Device.Event ready = device.newEvent();
        final long[] base = new long[shape.kvHeads()];
        final int[] capacity = new int[shape.kvHeads()];
        final PinnedHeadStore[] owner = new PinnedHeadStore[shape.kvHeads()];
        final int[] staged = new int[shape.kvHeads()];
        final int[] generation = new int[shape.kvHeads()];
        long bytes;
    }

    /** The rows of one offloaded (layer, KV head) as staged in the slot its layer last used. */
    private final class Staged implements DeviceRows {
        private Slot slot;
        private final int head;
        private long keys;
        private long values;
        private int version;

        Staged(int head) {
            this.head = head;
        }

        void point(Slot s) {
            slot = s;
            long k = s.base[head];
            long v = k + (long) s.capacity[head] * rowBytes;
            if (k != keys || v != values) {
                keys = k;
                values = v;
                version++;
            }
        }

        @Override
        public KvDType type() {
            return KvDType.F16;
        }

        @Override
        public int count() {
            return slot == null ? 0 : slot.staged[head];
        }

        @Override
        public long keysPointer() {
            return keys;
        }

        @Override
        public long valuesPointer() {
            return values;
        }

        @Override
        public int version() {
            return version;
        }
    }

    CudaHeadInferSchedule(Device device, ModelShape shape, boolean prefetch) {
        this.device = device;
        this.prefetch = prefetch;
        this.shape = shape;
        this.rowBytes = 2L * shape.headDim();
        this.offloaded = new PinnedHeadStore[shape.layers()][];
        this.rows = new DeviceRows[shape.layers()][];
        slots[0] = new Slot();
        slots[1] = new Slot();
    }

    ModelShape shape() {
        return shape;
    }

    /**
     * Attaches the stores of {@code layer} (each a resident {@link io.kvcache4j.cuda.CudaHeadStore} or
     * an offloaded {@link PinnedHeadStore}) and returns the device rows its attention reads.
     */
    DeviceRows[] attach(int layer, HeadStore[] layerStores) {
        PinnedHeadStore[] p = new PinnedHeadStore[layerStores.length];
        DeviceRows[] r = new DeviceRows[layerStores.length];
        for (int h = 0; h < p.length; h++) {
            if (layerStores[h] instanceof PinnedHeadStore s) {
                p[h] = s;
                r[h] = new Staged(h);
            } else if (layerStores[h] instanceof DeviceRows d) {
                r[h] = d;
            } else {
                throw new IllegalArgumentException("KV head " + h + " of layer " + layer
                        + " is neither a pinned nor a device store: "
                        + layerStores[h].getClass().getName());
            }
        }
        offloaded[layer] = p;
        rows[layer] = r;
        openLayers++;
        return r;
    }

    /** Whether layers {@code 0 .. layer} are attached. */
    boolean attachedThrough(int layer) {
        for (int l = 0; l <= layer; l++) {
            if (offloaded[l] == null) {
                return false;
            }
        }
        return true;
    }

    /** Offloaded heads found prefetched, copied whole at their layer's turn, and bytes sent to the device. */
    long prefetchedHeads() {
        return prefetchedHeads;
    }

    long wholeCopies() {
        return wholeCopies;
    }

    long bytesTransferred() {
        return bytesTransferred;
    }

    /** Device bytes of both staging slots. */
    long stagingBytes() {
        return slots[0].bytes + slots[1].bytes;
    }

    /**
     * Before {@code layer} attends: its offloaded heads' rows staged and the launch stream waiting for
     * them; the next layer's prefetch queued into the other slot.
     */
    void begin(int layer) {
        if (closed) {
            throw new IllegalStateException("the offload schedule is closed");
        }
        Slot slot = slots[Math.max(0, prefetchSlot)];
        stage(layer, slot, true);
        DeviceRows[] r = rows[layer];
        for (int h = 0; h < r.length; h++) {
            if (r[h] instanceof Staged s) {
                s.point(slot);
            }
        }
        device.awaitOnStream(slot.ready);
        prefetchedLayer = -1;
        int next = (layer + 1) % shape.layers();
        if (prefetch && next != layer && offloaded[next] != null) {
            Slot other = slot == slots[0] ? slots[1] : slots[0];
            stage(next, other, false);
            prefetchedLayer = next;
            prefetchSlot = other == slots[0] ? 0 : 1;
        }
    }

    /** Queues the copies that bring {@code slot} up to date with {@code layer}'s offloaded heads. */
    private void stage(int layer, Slot slot, boolean countHits) {
        PinnedHeadStore[] p = offloaded[layer];
        boolean any = false;
        for (int h = 0; h < p.length; h++) {
            PinnedHeadStore s = p[h];
            if (s == null) {
                continue;
            }
            int n = s.count();
            boolean current = slot.owner[h] == s && slot.generation[h] == s.generation() && slot.staged[h] <= n;
            int have = current ? slot.staged[h] : 0;
            if (n > slot.capacity[h]) {
                // n plus a sixteenth, in 256-row steps: a slot grows (and restages the head) every n/16 tokens
                // of decode, and holds at most ~1.07 of a layer's offloaded heads
                int cap = (int) Math.min(Integer.MAX_VALUE, ((long) n + n / 16 + 255) & -256L);
                if (slot.base[h] != 0) {
                    device.free(slot.base[h]);
                    slot.bytes -= 2L * slot.capacity[h] * rowBytes;
                }
                slot.base[h] = device.malloc(2L * cap * rowBytes);
                slot.capacity[h] = cap;
                slot.bytes += 2L * cap * rowBytes;
                have = 0;
            }
            if (countHits) {
                if (have > 0) {
                    prefetchedHeads++;
                } else if (n > 0) {
                    wholeCopies++;
                }
            }
            s.transfer(slot.base[h], slot.base[h] + (long) slot.capacity[h] * rowBytes, have, n, slot.ready);
            bytesTransferred += 2L * (n - have) * rowBytes;
            slot.owner[h] = s;
            slot.staged[h] = n;
            slot.generation[h] = s.generation();
            any = true;
        }
        if (any) {
            device.recordTransfer(slot.ready);
        }
    }

    /** One layer source closed; the last one frees the staging slots and their events. */
    void layerClosed() {
        if (--openLayers == 0 && !closed) {
            closed = true;
            for (Slot s : slots) {
                for (int h = 0; h < s.base.length; h++) {
                    if (s.base[h] != 0) {
                        device.free(s.base[h]);
                        s.base[h] = 0;
                    }
                    s.owner[h] = null;
                }
                s.bytes = 0;
                device.freeEvent(s.ready);
            }
        }
    }
}
