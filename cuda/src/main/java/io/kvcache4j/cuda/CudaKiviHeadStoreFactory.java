package io.kvcache4j.cuda;

import io.kvcache4j.api.Budget;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.quantization.CodecKernels;
import io.kvcache4j.quantization.KiviConfig;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Objects;

/**
 * Caches whose stores keep KIVI 4-bit groups on a {@link Device} ({@link CudaKiviHeadStore}) and
 * whose layers attend there on the packed codes ({@link CudaKiviLayerAttention}). Immutable; caches
 * sharing it share the device, each cache driven by its own thread (see {@link Device}).
 */
public final class CudaKiviHeadStoreFactory implements HeadStoreFactory {
    private final Device device;
    private final KiviConfig config;
    private final int pageTokens;

    /**
     * Stores of {@code config} (4 bits, f32 scales, groups of a multiple of 32 tokens) with host pages
     * of {@code pageTokens}.
     *
     * @throws IllegalArgumentException naming what the device kernel cannot read
     */
    public CudaKiviHeadStoreFactory(Device device, KiviConfig config, int pageTokens) {
        this.device = Objects.requireNonNull(device, "device");
        this.config = Objects.requireNonNull(config, "config");
        // the head dimension is checked per store (KiviLayout.of)
        KiviLayout.checkReadable(config);
        config.factory(pageTokens); // checks pageTokens
        this.pageTokens = pageTokens;
    }

    /** The configuration of the stores. */
    public KiviConfig config() {
        return config;
    }

    @Override
    public HeadStore create(Spec spec) {
        if (spec.shape().groupSize() > KernelEmulator.MAX_GROUP) {
            throw new IllegalArgumentException("the CUDA kernels take GQA groups of at most " + KernelEmulator.MAX_GROUP
                    + " query heads, the model has " + spec.shape().groupSize());
        }
        return new CudaKiviHeadStore(device, config, spec.headDim(), pageTokens, CodecKernels.get());
    }

    @Override
    public LayerAttention layerAttention(LayerContext context) {
        return new CudaKiviLayerAttention(device, context);
    }

    @Override
    public void checkBudget(Budget budget) {
        config.factory(pageTokens).checkBudget(budget);
    }

    @Override
    public String name() {
        return "cuda-int4";
    }
}
