package io.kvcache4j.hybrid;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Objects;

/**
 * Storage that splits each (layer, KV head) between a fast tier (sinks and recent window, attended
 * whole) and a slow tier (the rest, attended sparsely), as a {@link HeadStoreFactory}: RetrievalAttention
 * ({@link #retrieval}) and HGCA ({@link #hgca}). Each store does its split inside {@link
 * HeadStore#attend} (see {@link SplitHeadStore}), so the storage composes with the cache seam like
 * any other; the layer source ({@link SplitLayerAttention}) runs the KV heads in parallel on the
 * cache's {@link io.kvcache4j.api.AttentionPool} without cutting heads into chunks (a top-k is over a
 * head's whole slow tier).
 *
 * <p><b>Eviction.</b> The split replaces eviction: use it with the full policy. Policies that need
 * per-key attention scores are refused when the cache is built (the sparse pass sees only the chosen
 * keys); policies without scores work, at the cost of re-placing the rows on each compaction.
 *
 * <p>The tiers belong to the factory and are shared by the caches it builds. Immutable; thread-safe.
 */
public final class SplitFactory implements HeadStoreFactory {
    private final String name;
    private final RetrievalConfig retrieval;
    private final HgcaConfig hgca;
    private final Tier fast;
    private final Tier slow;
    private final AttentionKernel kernel;
    private final HeadStoreFactory slowStorage;
    private final io.kvcache4j.cuda.Device device;

    private SplitFactory(String name, RetrievalConfig retrieval, HgcaConfig hgca, Tier fast, Tier slow) {
        this(name, retrieval, hgca, fast, slow, null, null);
    }

    private SplitFactory(
            String name,
            RetrievalConfig retrieval,
            HgcaConfig hgca,
            Tier fast,
            Tier slow,
            HeadStoreFactory slowStorage,
            io.kvcache4j.cuda.Device device) {
        this.name = name;
        this.retrieval = retrieval;
        this.hgca = hgca;
        this.fast = Objects.requireNonNull(fast, "fast");
        this.slow = Objects.requireNonNull(slow, "slow");
        this.kernel = AttentionKernels.get();
        this.slowStorage = slowStorage;
        this.device = device;
    }

    /**
     * The same split with its fast tier also on {@code device} (the GPU, named {@code NAME-cuda}):
     * every store keeps its fast rows (sinks and recent window) in a {@link
     * io.kvcache4j.cuda.CudaHeadStore#deviceOnly device-only store} as well, in step with the host rows, and the layer's dense part
     * runs there ({@link CudaSplitLayerAttention}) while CPU threads compute the sparse part over
     * the slow tier; the two merge on the device. The host fast rows stay the rows of record (they
     * serve reads, compaction and any non-layer attention pass).
     */
    public SplitFactory onDevice(io.kvcache4j.cuda.Device device) {
        Objects.requireNonNull(device, "device");
        if (this.device != null) {
            throw new IllegalStateException("storage '" + name + "' is already on a device");
        }
        return new SplitFactory(name + "-cuda", retrieval, hgca, fast, slow, slowStorage, device);
    }

    /** The device of the fast tier, or null when it is host memory only. */
    public io.kvcache4j.cuda.Device device() {
        return device;
    }

    /**
     * The same split with the slow side kept by stores of {@code storage} (for instance a quantizing
     * one: {@code int4} keeps the older tokens as KIVI codes and attends the chosen ones on the codes),
     * named {@code NAME+STORAGE}. Selectors read the slow keys as that storage reproduces them. The
     * slow side's bytes are its stores' exact bytes; they are allocated by the storage, not reserved
     * in the slow tier. The storage must accept appends and a compaction to 0 slots, as every
     * registered storage does.
     */
    public SplitFactory withSlowStorage(HeadStoreFactory storage) {
        Objects.requireNonNull(storage, "storage");
        if (device != null) {
            throw new IllegalStateException("choose the slow storage before the device");
        }
        return new SplitFactory(name + "+" + storage.name(), retrieval, hgca, fast, slow, storage, null);
    }

    /** The storage of the slow side, or null for exact f16 pages in the slow tier. */
    public HeadStoreFactory slowStorage() {
        return slowStorage;
    }

    /** RetrievalAttention storage with its own unbounded tiers. */
    public static SplitFactory retrieval(RetrievalConfig config) {
        return retrieval(config, FastTier.unbounded(), new SlowTier());
    }

    /** RetrievalAttention storage in the given tiers. */
    public static SplitFactory retrieval(RetrievalConfig config, Tier fast, Tier slow) {
        return new SplitFactory("retrieval", Objects.requireNonNull(config, "config"), null, fast, slow);
    }

    /** HGCA storage with its own unbounded tiers. */
    public static SplitFactory hgca(HgcaConfig config) {
        return hgca(config, FastTier.unbounded(), new SlowTier());
    }

    /** HGCA storage in the given tiers. */
    public static SplitFactory hgca(HgcaConfig config, Tier fast, Tier slow) {
        return new SplitFactory("hgca", null, Objects.requireNonNull(config, "config"), fast, slow);
    }

    /** Checks a fast-tier window: both counts {@code >= 0}, not both 0. */
    static void checkWindow(int sinkTokens, int recentTokens) {
        if (sinkTokens < 0) {
            throw new IllegalArgumentException(
                    "sinkTokens must be in [0, " + Integer.MAX_VALUE + "], was " + sinkTokens);
        }
        if (recentTokens < 0) {
            throw new IllegalArgumentException(
                    "recentTokens must be in [0, " + Integer.MAX_VALUE + "], was " + recentTokens);
        }
        if ((long) sinkTokens + recentTokens > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("sinkTokens + recentTokens must be at most " + Integer.MAX_VALUE
                    + ", was " + ((long) sinkTokens + recentTokens));
        }
    }

    /** The fast tier (sinks and recent windows). */
    public Tier fastTier() {
        return fast;
    }

    /** The slow tier (everything older). */
    public Tier slowTier() {
        return slow;
    }

    /** Fast-tier tokens per (layer, KV head) at most. */
    public long fastTokensPerHead() {
        return retrieval != null ? retrieval.fastTokens() : hgca.fastTokens();
    }

    @Override
    public HeadStore create(Spec spec) {
        int pageTokens = retrieval != null ? retrieval.pageTokens() : hgca.pageTokens();
        TierPages f = new TierPages(fast, KvDType.F16, spec.headDim(), pageTokens, kernel);
        SplitRows s = slowStorage == null
                ? new TierPages(slow, KvDType.F16, spec.headDim(), pageTokens, kernel)
                : new StoreRows(slowStorage.create(spec), spec.headDim());
        int group = spec.shape().groupSize();
        SplitHeadStore store;
        if (retrieval != null) {
            TokenSelector selector = retrieval.selector().create(spec);
            if (selector == null) {
                throw new IllegalStateException("selector factory returned no selector for " + spec);
            }
            store = new RetrievalHeadStore(f, s, retrieval, selector, group);
        } else {
            store = new HgcaHeadStore(f, s, hgca, group);
        }
        if (device != null) {
            if (group > io.kvcache4j.cuda.KernelEmulator.MAX_GROUP) {
                store.close();
                throw new IllegalArgumentException("the CUDA kernels take GQA groups of at most "
                        + io.kvcache4j.cuda.KernelEmulator.MAX_GROUP + " query heads, the model has " + group);
            }
            store.copyFastTo(io.kvcache4j.cuda.CudaHeadStore.deviceOnly(device, KvDType.F16, spec.headDim()));
        }
        return store;
    }

    @Override
    public LayerAttention layerAttention(LayerContext context) {
        return device != null
                ? new CudaSplitLayerAttention(device, context, kernel)
                : new SplitLayerAttention(context, kernel);
    }

    @Override
    public String name() {
        return name;
    }
}
