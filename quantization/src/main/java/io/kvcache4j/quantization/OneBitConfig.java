package io.kvcache4j.quantization;

import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Objects;

/**
 * Parameters of the 1-bit KV codec ({@link OneBitHeadStore}), after Zhang et al., "From 16-Bit to
 * 1-Bit: Visual KV Cache Quantization for Memory-Efficient Multimodal Large Language Models"
 * (arXiv:2502.14882 v1; v2 is titled "CalibQuant: 1-Bit KV Cache Quantization for Multimodal
 * LLMs"). Keys and values are quantized per channel to one bit over groups of {@link #groupTokens()}
 * consecutive tokens; each channel of a group keeps two levels {@code lo} and {@code hi} (binary16)
 * and one bit per token picks the nearer one. The paper's two ways of choosing the levels:
 *
 * <ul>
 *   <li>{@link Mode#GROUP} ("group-specific quantization", storage name {@code 1bit}): the channel's
 *       minimum and maximum over the group, with the range clipped by a factor {@code α}: the levels
 *       are {@code mid ∓ α·(max − min)/2} around the range's midpoint. CalibQuant's public code clips
 *       as {@code α·min, α·max} with {@code α = 0.5} for keys and {@code 0.3} for values at one bit;
 *       the two agree for a range centred on zero, and shrinking about the midpoint keeps both
 *       levels inside the data's range for a one-signed channel. Defaults: {@code α_K = 0.5}, {@code
 *       α_V = 0.3}.
 *   <li>{@link Mode#QUANTILE} ("quantile-based quantization", storage name {@code 1bit-quantile}):
 *       the levels are the channel's {@code lowQuantile} and {@code highQuantile} quantiles over the
 *       group (linear interpolation between order statistics). The method section of the paper was
 *       not available to us, so the defaults follow from the 1-bit case itself: the levels that
 *       minimise the squared error are the means of the two halves of the distribution, which lie at
 *       the 25th/75th percentiles of a uniform channel, the 21st/79th of a Gaussian one and the
 *       18th/82nd of a Laplace one. Defaults: {@code 0.2} and {@code 0.8}.
 * </ul>
 *
 * <p><b>Group size.</b> CalibQuant quantizes the whole visual block of a prompt at once, one group
 * per channel; a cache that keeps decoding needs groups of bounded size, and KIVI's per-channel key
 * groups ({@code G = 32}, Liu et al., ICML 2024) are the published precedent. With binary16 levels
 * a group costs {@code 2·16/G} bits per element on top of the code bit: 2 bits at {@code G = 32},
 * 1.5 at 64, 1.25 at 128. The default {@code G = 64} halves KIVI's overhead while keeping the
 * eviction granularity and the exact residual window ({@code < G} tokens, see {@link
 * OneBitHeadStore}) short. {@code G} must be a multiple of {@link GroupAttention#BLOCK} so that a
 * block of keys never straddles two groups.
 *
 * @param mode how the two levels of a channel are chosen
 * @param groupTokens tokens per group {@code G}: a multiple of 16 in [16, 4096]
 * @param keyClip {@code α_K} in (0, 1], used by {@link Mode#GROUP}
 * @param valueClip {@code α_V} in (0, 1], used by {@link Mode#GROUP}
 * @param lowQuantile lower level's quantile, used by {@link Mode#QUANTILE}: {@code 0 <= low < high <= 1}
 * @param highQuantile upper level's quantile, used by {@link Mode#QUANTILE}
 */
public record OneBitConfig(
        Mode mode, int groupTokens, float keyClip, float valueClip, float lowQuantile, float highQuantile) {

    /** How a channel's two levels are chosen within a group. */
    public enum Mode {
        /** Clipped min/max of the group ("group-specific quantization"). */
        GROUP,
        /** Quantiles of the group ("quantile-based quantization"). */
        QUANTILE
    }

    /** Default group size {@code G}. */
    public static final int DEFAULT_GROUP_TOKENS = 64;
    /** Default key clipping factor {@code α_K} (CalibQuant's 1-bit value). */
    public static final float DEFAULT_KEY_CLIP = 0.5f;
    /** Default value clipping factor {@code α_V} (CalibQuant's 1-bit value). */
    public static final float DEFAULT_VALUE_CLIP = 0.3f;
    /** Default lower quantile. */
    public static final float DEFAULT_LOW_QUANTILE = 0.2f;
    /** Default upper quantile. */
    public static final float DEFAULT_HIGH_QUANTILE = 0.8f;
    /** Largest group size. */
    public static final int MAX_GROUP_TOKENS = 4096;

    public OneBitConfig {
        Objects.requireNonNull(mode, "mode");
        checkGroupTokens(groupTokens);
        if (!(keyClip > 0f && keyClip <= 1f)) {
            throw new IllegalArgumentException("keyClip must be in (0, 1], was " + keyClip);
        }
        if (!(valueClip > 0f && valueClip <= 1f)) {
            throw new IllegalArgumentException("valueClip must be in (0, 1], was " + valueClip);
        }
        if (!(lowQuantile >= 0f && lowQuantile < highQuantile && highQuantile <= 1f)) {
            throw new IllegalArgumentException("quantiles must satisfy 0 <= low < high <= 1, were low " + lowQuantile
                    + " and high " + highQuantile);
        }
    }

    /** Throws unless {@code groupTokens} is a multiple of {@link GroupAttention#BLOCK} in [16, 4096]. */
    static void checkGroupTokens(int groupTokens) {
        if (groupTokens < GroupAttention.BLOCK
                || groupTokens > MAX_GROUP_TOKENS
                || groupTokens % GroupAttention.BLOCK != 0) {
            throw new IllegalArgumentException("groupTokens must be a multiple of " + GroupAttention.BLOCK + " in ["
                    + GroupAttention.BLOCK + ", " + MAX_GROUP_TOKENS + "], was " + groupTokens);
        }
    }

    /** Group-specific quantization with the defaults ({@code G = 64}, {@code α_K = 0.5}, {@code α_V = 0.3}). */
    public static OneBitConfig group() {
        return group(DEFAULT_GROUP_TOKENS, DEFAULT_KEY_CLIP, DEFAULT_VALUE_CLIP);
    }

    /** Group-specific quantization: clipped min/max over groups of {@code groupTokens}. */
    public static OneBitConfig group(int groupTokens, float keyClip, float valueClip) {
        return new OneBitConfig(
                Mode.GROUP, groupTokens, keyClip, valueClip, DEFAULT_LOW_QUANTILE, DEFAULT_HIGH_QUANTILE);
    }

    /** Quantile-based quantization with the defaults ({@code G = 64}, quantiles 0.2 and 0.8). */
    public static OneBitConfig quantile() {
        return quantile(DEFAULT_GROUP_TOKENS, DEFAULT_LOW_QUANTILE, DEFAULT_HIGH_QUANTILE);
    }

    /** Quantile-based quantization: the {@code low} and {@code high} quantiles over groups of {@code groupTokens}. */
    public static OneBitConfig quantile(int groupTokens, float low, float high) {
        return new OneBitConfig(Mode.QUANTILE, groupTokens, DEFAULT_KEY_CLIP, DEFAULT_VALUE_CLIP, low, high);
    }

    /** The storage name: {@code 1bit} or {@code 1bit-quantile}. */
    public String storageName() {
        return mode == Mode.GROUP ? "1bit" : "1bit-quantile";
    }

    /** A factory of stores with this configuration and the process's kernels. */
    public HeadStoreFactory factory() {
        return factory(OneBitKernels.get(), AttentionKernels.get());
    }

    /**
     * A factory of stores with this configuration, scoring packed groups with {@code kernel} and the
     * exact residual window with {@code residualKernel} (tests pin the twins).
     */
    public HeadStoreFactory factory(OneBitKernel kernel, AttentionKernel residualKernel) {
        Objects.requireNonNull(kernel, "kernel");
        Objects.requireNonNull(residualKernel, "residualKernel");
        OneBitConfig config = this;
        return new HeadStoreFactory() {
            @Override
            public HeadStore create(Spec spec) {
                return new OneBitHeadStore(config, spec.headDim(), kernel, residualKernel);
            }

            @Override
            public LayerAttention layerAttention(LayerContext context) {
                return LayerAttention.cpu(context, residualKernel);
            }

            @Override
            public String name() {
                return storageName();
            }
        };
    }
}
