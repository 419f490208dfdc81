package io.kvcache4j.hybrid;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.store.HeadStore;
import java.lang.foreign.MemorySegment;

/**
 * The per-cache offload schedule of {@link HeadInferFactory}: one {@link TransferEngine} whose
 * staging buffers live in the fast tier, and, around each layer's attention, the staging of that
 * layer's offloaded heads and the prefetch of the next layer's (the last layer prefetches layer 0 for
 * the next step). A transfer copies the head's whole pages at submission; pages filled later are read
 * in place.
 *
 * <p>At most two layers hold staging buffers: the one attending and the one prefetched. A layer
 * other than the prefetched one that attends first drops the prefetch (cancel and release), so the
 * transfers are always consumed in submission order and the engine never waits on a buffer that its
 * consumer cannot release.
 *
 * <p>The schedule closes its engine (returning every staging byte to the fast tier) when the last
 * store attached to it closes. Driven by the cache's thread.
 */
final class HeadInferSchedule {
    private final ModelShape shape;
    private final TransferEngine engine;
    private final HeadInferStore[][] stores;
    private Transfer[] current;
    private int[] currentGeneration;
    private int[] currentPages;
    private Transfer[] prefetch;
    private int[] prefetchGeneration;
    private int[] prefetchPages;
    private int prefetchedLayer = -1;
    private int open;
    private boolean closed;
    private long stagedHeads;
    private long inPlaceHeads;

    HeadInferSchedule(ModelShape shape, Tier fast, int stagingBuffers) {
        this.shape = shape;
        this.engine = new TransferEngine(fast, stagingBuffers);
        this.stores = new HeadInferStore[shape.layers()][];
        int h = shape.kvHeads();
        current = new Transfer[h];
        currentGeneration = new int[h];
        currentPages = new int[h];
        prefetch = new Transfer[h];
        prefetchGeneration = new int[h];
        prefetchPages = new int[h];
    }

    ModelShape shape() {
        return shape;
    }

    TransferEngine engine() {
        return engine;
    }

    /** Attaches the stores of {@code layer}. */
    synchronized void attach(int layer, HeadStore[] layerStores) {
        HeadInferStore[] s = new HeadInferStore[layerStores.length];
        for (int h = 0; h < s.length; h++) {
            s[h] = (HeadInferStore) layerStores[h];
            s[h].attach(this);
            open++;
        }
        stores[layer] = s;
    }

    /** Whether layers {@code 0 .. layer} are attached. */
    boolean attachedThrough(int layer) {
        for (int l = 0; l <= layer; l++) {
            if (stores[l] == null) {
                return false;
            }
        }
        return true;
    }

    /** Offloaded heads staged from the fast tier, and read in place (compacted since the copy), so far. */
    long stagedHeads() {
        return stagedHeads;
    }

    long inPlaceHeads() {
        return inPlaceHeads;
    }

    /** Before {@code layer} attends: stage its offloaded heads, and start the next layer's prefetch. */
    void begin(int layer) {
        if (prefetchedLayer == layer) {
            swap();
        } else {
            if (prefetchedLayer >= 0) {
                drop(prefetch);
            }
            submit(layer, current, currentGeneration, currentPages);
        }
        prefetchedLayer = -1;
        int next = (layer + 1) % shape.layers();
        if (next != layer && stores[next] != null) {
            submit(next, prefetch, prefetchGeneration, prefetchPages);
            prefetchedLayer = next;
        }
        HeadInferStore[] s = stores[layer];
        for (int h = 0; h < s.length; h++) {
            Transfer t = current[h];
            if (t == null) {
                continue;
            }
            if (currentGeneration[h] != s[h].generation()) {
                inPlaceHeads++; // compacted since the copy was taken (which compaction cancelled)
                continue;
            }
            MemorySegment copy = t.await();
            if (s[h].stage(copy, currentPages[h], currentGeneration[h])) {
                stagedHeads++;
            } else {
                inPlaceHeads++;
            }
        }
    }

    /** After {@code layer} attended: release its staging buffers. */
    void end(int layer) {
        HeadInferStore[] s = stores[layer];
        for (int h = 0; h < s.length; h++) {
            s[h].unstage();
            Transfer t = current[h];
            if (t != null) {
                t.release();
                s[h].pending(null);
                current[h] = null;
            }
        }
    }

    private void swap() {
        Transfer[] t = current;
        current = prefetch;
        prefetch = t;
        int[] g = currentGeneration;
        currentGeneration = prefetchGeneration;
        prefetchGeneration = g;
        int[] p = currentPages;
        currentPages = prefetchPages;
        prefetchPages = p;
    }

    private void submit(int layer, Transfer[] into, int[] generation, int[] fullPages) {
        HeadInferStore[] s = stores[layer];
        for (int h = 0; h < s.length; h++) {
            HeadInferStore store = s[h];
            TierPages p = store.pages();
            int full = p.rows() / p.pageTokens();
            if (store.resident() || full == 0) {
                into[h] = null;
                continue;
            }
            Transfer t = engine.submit(p.pages(), full, p.pageBytes());
            into[h] = t;
            generation[h] = store.generation();
            fullPages[h] = full;
            store.pending(t);
        }
    }

    private void drop(Transfer[] transfers) {
        for (int h = 0; h < transfers.length; h++) {
            Transfer t = transfers[h];
            if (t != null) {
                t.cancel();
                t.release();
                transfers[h] = null;
            }
        }
    }

    /** One attached store closed; the last one closes the engine. */
    synchronized void storeClosed() {
        if (--open == 0 && !closed) {
            closed = true;
            drop(prefetch);
            drop(current);
            engine.close();
        }
    }
}
