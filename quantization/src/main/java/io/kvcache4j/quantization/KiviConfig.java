package io.kvcache4j.quantization;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Locale;
import java.util.Objects;

/**
 * The parameters of a KIVI store ({@link KiviHeadStore}), after Liu et al., "KIVI: A Tuning-Free
 * Asymmetric 2bit Quantization for KV Cache", ICML 2024.
 *
 * @param bits code width: 2 or 4
 * @param groupTokens {@code G}: keys share a per-channel scale and zero point over each aligned group
 *     of {@code G} tokens, and the store's eviction granularity is {@code G} ({@code >= 1})
 * @param residualTokens {@code R}: the newest {@code R} tokens stay in f16 ({@code >= 0}, a multiple
 *     of {@code G})
 * @param valueGroupChannels channels per value group: each token's value row has a scale and zero
 *     point per group of this many channels ({@code >= 1}; must divide the head dimension, checked
 *     by {@link #check(int)} when a store is created)
 * @param scaleType how scales and zero points are stored: {@link KvDType#F16} (as KIVI's code keeps
 *     them, in the model's half precision) or {@link KvDType#F32}
 */
public record KiviConfig(int bits, int groupTokens, int residualTokens, int valueGroupChannels, KvDType scaleType) {
    /** The paper's group size {@code G} (keys: tokens per group; values: channels per group). */
    public static final int DEFAULT_GROUP = 32;
    /** The paper's residual length {@code R} (KIVI's LongBench runs: 128). */
    public static final int DEFAULT_RESIDUAL = 128;

    public KiviConfig {
        Objects.requireNonNull(scaleType, "scaleType");
        if (scaleType != KvDType.F16 && scaleType != KvDType.F32) {
            throw new IllegalArgumentException(
                    "scaleType must be f16 or f32, was " + scaleType.name().toLowerCase(Locale.ROOT));
        }
        if (bits != 2 && bits != 4) {
            throw new IllegalArgumentException("bits must be 2 or 4, was " + bits);
        }
        if (groupTokens < 1 || groupTokens > 1 << 16) {
            throw new IllegalArgumentException("groupTokens must be in [1, 65536], was " + groupTokens);
        }
        if (residualTokens < 0 || residualTokens > 1 << 20) {
            throw new IllegalArgumentException("residualTokens must be in [0, 1048576], was " + residualTokens);
        }
        if (residualTokens % groupTokens != 0) {
            throw new IllegalArgumentException(
                    "residualTokens must be a multiple of groupTokens " + groupTokens + ", was " + residualTokens);
        }
        if (valueGroupChannels < 1) {
            throw new IllegalArgumentException(
                    "valueGroupChannels must be in [1, " + Integer.MAX_VALUE + "], was " + valueGroupChannels);
        }
    }

    /** A configuration whose scales and zero points are f32. */
    public KiviConfig(int bits, int groupTokens, int residualTokens, int valueGroupChannels) {
        this(bits, groupTokens, residualTokens, valueGroupChannels, KvDType.F32);
    }

    /**
     * The paper's defaults at {@code bits}: {@code G = 32}, {@code R = 128}, value groups of 32
     * channels, scales and zero points in f16.
     */
    public static KiviConfig defaults(int bits) {
        return new KiviConfig(bits, DEFAULT_GROUP, DEFAULT_RESIDUAL, DEFAULT_GROUP, KvDType.F16);
    }

    /** Bytes of one stored scale or zero point: 2 (f16) or 4 (f32). */
    public int scaleBytes() {
        return scaleType.bytes();
    }

    /**
     * Throws unless a store of {@code headDim} elements per row can use this configuration: the value
     * channel group must divide it.
     */
    public void check(int headDim) {
        if (headDim < 1) {
            throw new IllegalArgumentException("headDim must be >= 1, was " + headDim);
        }
        if (headDim % valueGroupChannels != 0) {
            throw new IllegalArgumentException(
                    "valueGroupChannels must divide headDim " + headDim + ", was " + valueGroupChannels);
        }
    }

    /**
     * Throws unless a cache with {@code budget} (resolved to tokens) can quantize anything: the f16
     * residual must fit in the budget ({@code residualTokens <= budget.tokens()}), else every token
     * the policy keeps stays in f16 and the codec only adds overhead. Callers that combine a budget
     * with this codec (the command line, the eval harness) call it when they build the cache; a cache
     * without an eviction budget needs no check.
     *
     * @throws IllegalArgumentException naming the residual, the budget and the allowed range
     */
    public void check(Budget budget) {
        Objects.requireNonNull(budget, "budget");
        int tokens = budget.tokens();
        if (residualTokens > tokens) {
            throw new IllegalArgumentException("residualTokens must be in [0, " + tokens + "] (the budget of " + tokens
                    + " tokens), was " + residualTokens);
        }
    }

    /** Codes per byte ({@code 8 / bits}). */
    public int codesPerByte() {
        return 8 / bits;
    }

    /** The storage name: {@code int4} or {@code int2}. */
    public String name() {
        return "int" + bits;
    }

    /** A factory of KIVI stores with pages of {@code pageTokens} tokens and the process's kernels. */
    public HeadStoreFactory factory(int pageTokens) {
        return factory(pageTokens, CodecKernels.get(), AttentionKernels.get());
    }

    /**
     * A factory of KIVI stores with the given codec kernel, and {@code softmax} for the online softmax
     * of the layer's attention (tests run the two families side by side).
     */
    public HeadStoreFactory factory(int pageTokens, CodecKernel kernel, AttentionKernel softmax) {
        Int8Config.checkPageTokens(pageTokens);
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(softmax, "softmax");
        KiviConfig config = this;
        return new HeadStoreFactory() {
            @Override
            public HeadStore create(Spec spec) {
                return new KiviHeadStore(config, spec.headDim(), pageTokens, kernel);
            }

            @Override
            public LayerAttention layerAttention(LayerContext context) {
                return LayerAttention.cpu(context, softmax);
            }

            @Override
            public String name() {
                return config.name();
            }

            @Override
            public void checkBudget(io.kvcache4j.api.Budget budget) {
                config.check(budget.requireTokens());
            }
        };
    }
}
