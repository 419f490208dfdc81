package io.kvcache4j.quantization;

import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;

/**
 * Storage {@code 1bit-quantile}: 1-bit keys and values whose levels are quantiles of each channel
 * over groups of 64 tokens, with {@link OneBitConfig#quantile()}'s defaults. The page size does not
 * apply.
 */
public final class OneBitQuantileProvider implements HeadStoreProvider {
    @Override
    public String name() {
        return "1bit-quantile";
    }

    @Override
    public String description() {
        return "1-bit per-channel keys and values, levels at the " + OneBitConfig.DEFAULT_LOW_QUANTILE + "/"
                + OneBitConfig.DEFAULT_HIGH_QUANTILE + " quantiles over groups of "
                + OneBitConfig.DEFAULT_GROUP_TOKENS + " tokens, binary16 residual";
    }

    @Override
    public HeadStoreFactory factory(int pageTokens) {
        return OneBitConfig.quantile().factory();
    }
}
