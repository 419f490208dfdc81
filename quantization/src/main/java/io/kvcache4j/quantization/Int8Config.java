package io.kvcache4j.quantization;

import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Objects;

/**
 * The parameters of an int8 store ({@link Int8HeadStore}).
 *
 * @param pageTokens slots per off-heap page: a multiple of 16 in {@code [16, 65536]}
 */
public record Int8Config(int pageTokens) {
    public Int8Config {
        checkPageTokens(pageTokens);
    }

    /** Throws unless {@code pageTokens} is a multiple of 16 in {@code [16, 65536]}. */
    static void checkPageTokens(int pageTokens) {
        if (pageTokens < CodecKernel.BLOCK || pageTokens > 1 << 16 || pageTokens % CodecKernel.BLOCK != 0) {
            throw new IllegalArgumentException("pageTokens must be a multiple of " + CodecKernel.BLOCK + " in ["
                    + CodecKernel.BLOCK + ", 65536], was " + pageTokens);
        }
    }

    /** A factory of int8 stores with the process's kernels. */
    public HeadStoreFactory factory() {
        return factory(CodecKernels.get(), AttentionKernels.get());
    }

    /** A factory of int8 stores with the given codec kernel and online-softmax kernel. */
    public HeadStoreFactory factory(CodecKernel kernel, AttentionKernel softmax) {
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(softmax, "softmax");
        int pages = pageTokens;
        return new HeadStoreFactory() {
            @Override
            public HeadStore create(Spec spec) {
                return new Int8HeadStore(spec.headDim(), pages, kernel);
            }

            @Override
            public LayerAttention layerAttention(LayerContext context) {
                return LayerAttention.cpu(context, softmax);
            }

            @Override
            public String name() {
                return "int8";
            }
        };
    }
}
