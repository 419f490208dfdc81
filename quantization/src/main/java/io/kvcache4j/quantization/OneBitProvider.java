package io.kvcache4j.quantization;

import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;

/**
 * Storage {@code 1bit}: 1-bit keys and values, group-specific levels (clipped min/max per channel
 * over groups of 64 tokens), with {@link OneBitConfig#group()}'s defaults. The page size does not
 * apply (the codec allocates per group).
 */
public final class OneBitProvider implements HeadStoreProvider {
    @Override
    public String name() {
        return "1bit";
    }

    @Override
    public String description() {
        return "1-bit per-channel keys and values, clipped min/max over groups of " + OneBitConfig.DEFAULT_GROUP_TOKENS
                + " tokens, binary16 residual";
    }

    @Override
    public HeadStoreFactory factory(int pageTokens) {
        return OneBitConfig.group().factory();
    }
}
