/**
 * kvcache4j's core: the cache, its storage and eviction SPIs, exact paged storage and the attention
 * kernels. The packages named here are the public API; {@code io.kvcache4j.cache} (the cache
 * implementation) is internal.
 */
module io.kvcache4j.api {
    requires java.management;
    // The Vector API kernels load only when the incubator module is in the boot layer.
    requires static jdk.incubator.vector;

    exports io.kvcache4j.api;
    exports io.kvcache4j.attention;
    exports io.kvcache4j.store;
    // Support objects (dot, f16/bf16 conversion) for kvcache4j's own modules, not for users.
    exports io.kvcache4j.internal.vectorization to
            io.kvcache4j.eviction,
            io.kvcache4j.quantization,
            io.kvcache4j.retrieval,
            io.kvcache4j.hybrid;

    uses io.kvcache4j.store.HeadStoreProvider;
    uses io.kvcache4j.api.EvictionPolicyProvider;
}
