package io.kvcache4j.hybrid;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.cuda.Device;
import io.kvcache4j.cuda.DeviceRows;
import io.kvcache4j.cuda.PinnedHeadStore;
import io.kvcache4j.store.HeadStore;

/**
 * The per-cache offload schedule of {@link CudaHeadInferFactory}. A layer's KV heads attend in
 * units: consecutive heads of which at most {@code slotHeads} are offloaded (one unit per layer by
 * default, every offloaded head in it). Two staging slots in device memory, each holding one unit's
 * offloaded heads, are used in turn (HeadInfer's ping-pong). Before a unit attends, its heads' rows
 * are in one slot: copied there by the prefetch that the previous unit started, topped up with the rows
 * appended since (the new tokens), or copied whole when the prefetch was for another unit or a
 * compaction made it stale. The launch stream waits for the slot's event, then the next unit's
 * prefetch (the same layer's next unit, or the next layer's first) is queued into the other slot on
 * the transfer stream, where it runs while this unit's kernels and the CPU work up to the next unit
 * run.
 *
 * <p><b>Why the slots never race.</b> Every unit's attention ends with the launch stream drained
 * ({@link io.kvcache4j.cuda.CudaLayerAttention} synchronizes before it returns), so when a prefetch is
 * queued into a slot, the last launch that read that slot has completed; transfers run in the order
 * they are queued, and a launch waits for the event recorded after the last transfer into its slot.
 * The pinned stores wait for their last transfer before they move or rewrite rows.
 *
 * <p>A slot's buffer grows to the rows it must hold plus a sixteenth (the staged rows are then
 * copied again). The schedule frees its device buffers and events when the last layer source closes.
 * Driven by the cache's thread.
 */
final class CudaHeadInferSchedule {
    private final Device device;
    private final ModelShape shape;
    private final long rowBytes;
    private final boolean prefetch;
    private final int slotHeads;
    /** Per layer and KV head: the pinned store of an offloaded head, null for a resident one. */
    private final PinnedHeadStore[][] offloaded;
    /** Per layer and KV head: the device rows a layer's attention reads (resident store or staged view). */
    private final DeviceRows[][] rows;
    /** Per layer: the first KV head of each unit, then kvHeads. */
    private final int[][] units;

    private final Slot[] slots = new Slot[2];
    private int prefetchSlot = -1;
    private int openLayers;
    private boolean closed;
    private long prefetchedHeads;
    private long wholeCopies;
    private long bytesTransferred;

    /** Device buffers for one unit's offloaded heads: per position, {@code capacity} key rows then as many value rows. */
    private final class Slot {
        final Device.Event ready = device.newEvent();
        final long[] base = new long[slotHeads];
        final int[] capacity = new int[slotHeads];
        final PinnedHeadStore[] owner = new PinnedHeadStore[slotHeads];
        final int[] staged = new int[slotHeads];
        final int[] generation = new int[slotHeads];
        long bytes;
    }

    /** The rows of one offloaded (layer, KV head) as staged in the slot its unit last used. */
    private final class Staged implements DeviceRows {
        private Slot slot;
        private int at;
        private long keys;
        private long values;
        private int version;

        void point(Slot s, int position) {
            slot = s;
            at = position;
            long k = s.base[position];
            long v = k + (long) s.capacity[position] * rowBytes;
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
            return slot == null ? 0 : slot.staged[at];
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

    /**
     * A schedule whose slots hold {@code slotHeads} offloaded heads each (at least 1; at least the
     * offloaded heads of a layer gives one unit per layer).
     */
    CudaHeadInferSchedule(Device device, ModelShape shape, boolean prefetch, int slotHeads) {
        if (slotHeads < 1) {
            throw new IllegalArgumentException("slotHeads must be >= 1, was " + slotHeads);
        }
        this.device = device;
        this.shape = shape;
        this.rowBytes = 2L * shape.headDim();
        this.prefetch = prefetch;
        this.slotHeads = Math.min(slotHeads, shape.kvHeads());
        this.offloaded = new PinnedHeadStore[shape.layers()][];
        this.rows = new DeviceRows[shape.layers()][];
        this.units = new int[shape.layers()][];
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
        int[] starts = new int[layerStores.length + 1];
        int n = 0;
        int inUnit = 0;
        starts[n++] = 0;
        for (int h = 0; h < p.length; h++) {
            if (layerStores[h] instanceof PinnedHeadStore s) {
                if (inUnit == slotHeads) {
                    starts[n++] = h;
                    inUnit = 0;
                }
                inUnit++;
                p[h] = s;
                r[h] = new Staged();
            } else if (layerStores[h] instanceof DeviceRows d) {
                r[h] = d;
            } else {
                throw new IllegalArgumentException("KV head " + h + " of layer " + layer
                        + " is neither a pinned nor a device store: "
                        + layerStores[h].getClass().getName());
            }
        }
        starts[n++] = p.length;
        offloaded[layer] = p;
        rows[layer] = r;
        units[layer] = java.util.Arrays.copyOf(starts, n);
        openLayers++;
        return r;
    }

    /** The first KV head of each of {@code layer}'s units, then the layer's KV heads. */
    int[] units(int layer) {
        return units[layer];
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

    /** Offloaded heads found prefetched, copied whole at their unit's turn, and bytes sent to the device. */
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
     * Before unit {@code unit} of {@code layer} attends: its offloaded heads' rows staged and the launch
     * stream waiting for them; the next unit's prefetch queued into the other slot.
     */
    void begin(int layer, int unit) {
        if (closed) {
            throw new IllegalStateException("the offload schedule is closed");
        }
        Slot slot = slots[Math.max(0, prefetchSlot)];
        stage(layer, unit, slot, true);
        int[] u = units[layer];
        DeviceRows[] r = rows[layer];
        int position = 0;
        for (int h = u[unit]; h < u[unit + 1]; h++) {
            if (r[h] instanceof Staged s) {
                s.point(slot, position++);
            }
        }
        device.awaitOnStream(slot.ready);
        int nextLayer = layer;
        int nextUnit = unit + 1;
        if (nextUnit == u.length - 1) {
            nextLayer = (layer + 1) % shape.layers();
            nextUnit = 0;
        }
        if (prefetch && (nextLayer != layer || nextUnit != unit) && offloaded[nextLayer] != null) {
            Slot other = slot == slots[0] ? slots[1] : slots[0];
            stage(nextLayer, nextUnit, other, false);
            prefetchSlot = other == slots[0] ? 0 : 1;
        }
    }

    /** Queues the copies that bring {@code slot} up to date with the offloaded heads of a unit. */
    private void stage(int layer, int unit, Slot slot, boolean countHits) {
        PinnedHeadStore[] p = offloaded[layer];
        int[] u = units[layer];
        boolean any = false;
        int i = 0;
        for (int h = u[unit]; h < u[unit + 1]; h++) {
            PinnedHeadStore s = p[h];
            if (s == null) {
                continue;
            }
            int n = s.count();
            boolean current = slot.owner[i] == s && slot.generation[i] == s.generation() && slot.staged[i] <= n;
            int have = current ? slot.staged[i] : 0;
            if (n > slot.capacity[i]) {
                // n plus a sixteenth, in 256-row steps: a slot grows (and restages the head) every n/16 tokens
                // of decode, and holds at most ~1.07 of its heads' rows
                int cap = (int) Math.min(Integer.MAX_VALUE, ((long) n + n / 16 + 255) & -256L);
                if (slot.base[i] != 0) {
                    device.free(slot.base[i]);
                    slot.bytes -= 2L * slot.capacity[i] * rowBytes;
                }
                slot.base[i] = device.malloc(2L * cap * rowBytes);
                slot.capacity[i] = cap;
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
            s.transfer(slot.base[i], slot.base[i] + (long) slot.capacity[i] * rowBytes, have, n, slot.ready);
            bytesTransferred += 2L * (n - have) * rowBytes;
            slot.owner[i] = s;
            slot.staged[i] = n;
            slot.generation[i] = s.generation();
            any = true;
            i++;
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
                for (int i = 0; i < s.base.length; i++) {
                    if (s.base[i] != 0) {
                        device.free(s.base[i]);
                        s.base[i] = 0;
                    }
                    s.owner[i] = null;
                }
                s.bytes = 0;
                device.freeEvent(s.ready);
            }
        }
    }
}
