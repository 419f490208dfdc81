package io.kvcache4j.hybrid;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.cuda.CudaHeadStore;
import io.kvcache4j.cuda.CudaLayerAttention;
import io.kvcache4j.cuda.Device;
import io.kvcache4j.cuda.DeviceRows;
import io.kvcache4j.cuda.KernelEmulator;
import io.kvcache4j.cuda.PinnedHeadStore;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Objects;

/**
 * HeadInfer on a GPU (Luo et al., "HeadInfer: Memory-Efficient LLM Inference by Head-wise
 * Offloading", arXiv 2502.12574): heads {@code 0 .. residentHeads-1} of every layer keep their exact
 * f16 rows in device memory ({@link CudaHeadStore}, as {@code cuda-f16} keeps them, with its host
 * mirror for CPU passes); the others live in pinned host memory
 * ({@link PinnedHeadStore}, the slow tier) and reach the device through two staging slots, the next
 * layer's heads copied on a second stream while the current layer computes ({@link
 * CudaHeadInferSchedule}). Attention runs on the device ({@link CudaLayerAttention}, the kernels of
 * {@code cuda-f16}): the outputs are bit-identical to the all-resident {@code cuda-f16} cache under
 * every eviction policy.
 *
 * <p><b>Memory.</b> Device memory holds the resident heads and the two staging slots (each as large
 * as a layer's offloaded heads), so for a model of {@code L} layers with every head offloaded the
 * device holds about {@code 2/L} of the KV cache. A cache's {@link io.kvcache4j.api.KvCache#bytesHeld()}
 * counts the stores (device rows of resident heads, pinned rows of offloaded ones); the staging slots
 * and the layers' batch buffers are device memory on top ({@link #stagingBytes}, {@link
 * Device#bytesAllocated()}), freed when the cache closes.
 *
 * <p>Per decode step every offloaded head crosses PCIe once: HeadInfer trades that bandwidth for
 * device memory. Each cache gets its own schedule (the layer sources it creates on one thread, layer
 * 0 first, as {@link io.kvcache4j.api.KvCache} construction does, are linked into it). Immutable
 * configuration; caches built on different threads share the device.
 */
public final class CudaHeadInferFactory implements HeadStoreFactory {
    private final Device device;
    private final HeadInferConfig config;
    private final boolean prefetch;
    private final ThreadLocal<CudaHeadInferSchedule> building = new ThreadLocal<>();
    private final java.util.Set<CudaHeadInferSchedule> schedules =
            java.util.Collections.synchronizedSet(java.util.Collections.newSetFromMap(new java.util.WeakHashMap<>()));

    /**
     * A factory on {@code device}. {@code config.stagingBuffers()} is the heads the two staging slots
     * hold together: 0 for a layer's offloaded heads in each (one launch per layer), or an even number
     * {@code 2s}, {@code s} heads a slot, checked against the model when the first store is created
     * ({@code s} at most the offloaded heads of a layer). Smaller slots hold less device memory; each
     * layer then attends in {@code ceil(offloaded / s)} launches, and only the copy of each layer's
     * first unit can hide behind the work between layers.
     */
    public CudaHeadInferFactory(Device device, HeadInferConfig config) {
        this(device, config, true);
    }

    private CudaHeadInferFactory(Device device, HeadInferConfig config, boolean prefetch) {
        this.prefetch = prefetch;
        this.device = Objects.requireNonNull(device, "device");
        this.config = Objects.requireNonNull(config, "config");
        if (config.stagingBuffers() % 2 != 0) {
            throw new IllegalArgumentException("stagingBuffers must be 0 (a layer's offloaded heads per slot) or even"
                    + " (two slots of stagingBuffers/2 heads) for the GPU schedule, was " + config.stagingBuffers());
        }
    }

    /** Heads a staging slot holds for a model of {@code kvHeads} KV heads (checks the configuration). */
    private int slotHeads(int kvHeads) {
        int offloaded = config.offloadedHeads(kvHeads);
        if (config.stagingBuffers() == 0) {
            return Math.max(1, offloaded);
        }
        if (config.stagingBuffers() > 2 * offloaded) {
            throw new IllegalArgumentException("stagingBuffers must be 0 or even in [2, " + 2 * offloaded
                    + "] (two slots of at most the " + offloaded + " offloaded heads of a layer), was "
                    + config.stagingBuffers());
        }
        return config.stagingBuffers() / 2;
    }

    /**
     * The same factory with the next layer's prefetch on or off. Off, each layer copies its offloaded
     * heads at its turn and waits for them (same outputs): the baseline that measures what the prefetch
     * hides.
     */
    public CudaHeadInferFactory withPrefetch(boolean on) {
        return new CudaHeadInferFactory(device, config, on);
    }

    /** Whether the next layer's heads are copied while the current layer computes. */
    public boolean prefetch() {
        return prefetch;
    }

    public HeadInferConfig config() {
        return config;
    }

    public Device device() {
        return device;
    }

    /** Device bytes of the staging slots of the caches built by this factory and not closed. */
    public long stagingBytes() {
        synchronized (schedules) {
            long b = 0;
            for (CudaHeadInferSchedule s : schedules) {
                b += s.stagingBytes();
            }
            return b;
        }
    }

    /** Bytes copied to the device by the schedules of the caches built by this factory (tests, reports). */
    public long bytesTransferred() {
        synchronized (schedules) {
            long b = 0;
            for (CudaHeadInferSchedule s : schedules) {
                b += s.bytesTransferred();
            }
            return b;
        }
    }

    /** Offloaded heads found prefetched at their layer's turn, and heads copied whole then (tests, reports). */
    public long[] prefetchCounts() {
        synchronized (schedules) {
            long hits = 0;
            long whole = 0;
            for (CudaHeadInferSchedule s : schedules) {
                hits += s.prefetchedHeads();
                whole += s.wholeCopies();
            }
            return new long[] {hits, whole};
        }
    }

    @Override
    public HeadStore create(Spec spec) {
        int kvHeads = spec.shape().kvHeads();
        slotHeads(kvHeads); // checks residentHeads and stagingBuffers against the model
        if (spec.shape().groupSize() > KernelEmulator.MAX_GROUP) {
            throw new IllegalArgumentException("the CUDA kernels take GQA groups of at most " + KernelEmulator.MAX_GROUP
                    + " query heads, the model has " + spec.shape().groupSize());
        }
        return spec.kvHead() < config.residentHeads()
                ? new CudaHeadStore(device, KvDType.F16, spec.headDim(), config.pageTokens())
                : new PinnedHeadStore(device, KvDType.F16, spec.headDim(), config.pageTokens());
    }

    @Override
    public LayerAttention layerAttention(LayerContext context) {
        CudaHeadInferSchedule schedule = building.get();
        if (context.layer() == 0
                || schedule == null
                || !schedule.shape().equals(context.shape())
                || !schedule.attachedThrough(context.layer() - 1)) {
            schedule = new CudaHeadInferSchedule(
                    device, context.shape(), prefetch, slotHeads(context.shape().kvHeads()));
            building.set(schedule);
            schedules.add(schedule);
        }
        DeviceRows[] rows = schedule.attach(context.layer(), context.stores());
        if (context.layer() == context.shape().layers() - 1) {
            building.remove();
        }
        LayerAttention cpu = LayerAttention.cpu(context, AttentionKernels.get());
        return new CudaHeadInferLayerAttention(schedule, device, context.shape(), context.layer(), rows, cpu);
    }

    @Override
    public String name() {
        return "headinfer-cuda";
    }
}
