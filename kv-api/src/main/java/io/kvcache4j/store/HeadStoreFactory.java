package io.kvcache4j.store;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;

/**
 * Creates the {@link HeadStore} of each (layer, KV head) of a cache. The default, {@link #EXACT},
 * stores exact rows in the requested dtype in off-heap pages; codecs and tiers provide their own.
 */
@FunctionalInterface
public interface HeadStoreFactory {

    /** What a store is created for. */
    record Spec(
            int layer,
            int kvHead,
            KvDType dtype,
            int headDim,
            int pageTokens,
            AttentionKernel kernel,
            HeadStore.PendingCounter pending) {}

    HeadStore create(Spec spec);

    /** Exact storage: {@link PagedHeadStore}. */
    HeadStoreFactory EXACT =
            spec -> new PagedHeadStore(spec.dtype(), spec.headDim(), spec.pageTokens(), spec.kernel(), spec.pending());
}
