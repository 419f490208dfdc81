package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.PagedHeadStore;
import java.util.Locale;
import java.util.Objects;

/**
 * Caches whose stores live on a {@link Device} ({@link CudaHeadStore}) and whose layers attend there
 * ({@link CudaLayerAttention}). Immutable; caches sharing it share the device and its stream, each
 * cache driven by its own thread (the device serializes their calls, see {@link Device}).
 */
public final class CudaHeadStoreFactory implements HeadStoreFactory {
    private final Device device;
    private final KvDType type;
    private final int pageTokens;
    private final int chunkTokens;

    /** Stores in {@code type} with host mirror pages of {@code pageTokens}, layers split in chunks of {@code chunkTokens}. */
    public CudaHeadStoreFactory(Device device, KvDType type, int pageTokens, int chunkTokens) {
        this.device = Objects.requireNonNull(device, "device");
        this.type = Objects.requireNonNull(type, "type");
        if (type == KvDType.F32) {
            throw new IllegalArgumentException("CUDA stores keep f16 or bf16 rows, not f32");
        }
        PagedHeadStore.checkPageTokens(pageTokens);
        this.pageTokens = pageTokens;
        this.chunkTokens = chunkTokens;
    }

    @Override
    public HeadStore create(Spec spec) {
        if (spec.shape().groupSize() > KernelEmulator.MAX_GROUP) {
            throw new IllegalArgumentException("the CUDA kernels take GQA groups of at most " + KernelEmulator.MAX_GROUP
                    + " query heads, the model has " + spec.shape().groupSize());
        }
        return new CudaHeadStore(device, type, spec.headDim(), pageTokens);
    }

    @Override
    public LayerAttention layerAttention(LayerContext context) {
        return new CudaLayerAttention(device, context, chunkTokens);
    }

    @Override
    public String name() {
        return "cuda-" + type.name().toLowerCase(Locale.ROOT);
    }
}
