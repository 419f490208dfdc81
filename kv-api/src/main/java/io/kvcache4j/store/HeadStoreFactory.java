package io.kvcache4j.store;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import java.util.Objects;

/**
 * Creates the {@link HeadStore} of each (layer, KV head) of a cache, and the {@link LayerAttention}
 * that computes a layer's attention over them. {@link #exact} stores exact rows in off-heap pages;
 * codecs and tiers provide their own (see {@link HeadStoreProvider} for registration by name).
 * Factories are immutable and may be shared between caches.
 */
@FunctionalInterface
public interface HeadStoreFactory {

    /** What a store is created for. */
    record Spec(ModelShape shape, int layer, int kvHead) {
        public Spec {
            Objects.requireNonNull(shape, "shape");
            shape.checkLayer(layer);
            shape.checkKvHead(kvHead);
        }

        /** Elements per key or value row. */
        public int headDim() {
            return shape.headDim();
        }
    }

    /** Creates the empty store of one (layer, KV head). */
    HeadStore create(Spec spec);

    /**
     * The attention source of {@code layer} over its stores (index = KV head). Default: the CPU
     * source, one grouped single-pass attention per (token, KV head) through {@link HeadStore#attend}.
     */
    default LayerAttention layerAttention(LayerContext context) {
        return LayerAttention.cpu(context, AttentionKernels.get());
    }

    /**
     * Checks, before any work, that caches with this storage can honour {@code budget} (resolved to
     * tokens) per (layer, KV head); a codec whose exact residual would not fit rejects it here.
     * Default: every budget.
     *
     * @throws IllegalArgumentException naming the parameter, its value and the allowed range
     */
    default void checkBudget(io.kvcache4j.api.Budget budget) {
        java.util.Objects.requireNonNull(budget, "budget").requireTokens();
    }

    /** Short name for reports, e.g. {@code f16} or {@code int4}. */
    default String name() {
        return "custom";
    }

    /** Exact storage in {@code type}, pages of {@code pageTokens} tokens, with the process's kernel. */
    static HeadStoreFactory exact(KvDType type, int pageTokens) {
        return exact(type, pageTokens, AttentionKernels.get());
    }

    /** Exact storage with a given kernel (tests compare the kernels side by side). */
    static HeadStoreFactory exact(KvDType type, int pageTokens, AttentionKernel kernel) {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(kernel, "kernel");
        PagedHeadStore.checkPageTokens(pageTokens);
        return new HeadStoreFactory() {
            @Override
            public HeadStore create(Spec spec) {
                return new PagedHeadStore(type, spec.headDim(), pageTokens, kernel);
            }

            @Override
            public LayerAttention layerAttention(LayerContext context) {
                return LayerAttention.cpu(context, kernel);
            }

            @Override
            public String name() {
                return type.name().toLowerCase(java.util.Locale.ROOT);
            }
        };
    }
}
