package io.kvcache4j.attention;

import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.store.HeadStore;

/**
 * What a {@link LayerAttention} is created for: the model shape, the layer, its stores (index = KV
 * head) and the pool of threads the cache was given ({@code null}: the caller's thread only).
 */
public record LayerContext(ModelShape shape, int layer, HeadStore[] stores, AttentionPool pool) {
    public LayerContext {
        shape.checkLayer(layer);
        if (stores.length != shape.kvHeads()) {
            throw new IllegalArgumentException(
                    "a layer has " + shape.kvHeads() + " KV heads, got " + stores.length + " stores");
        }
        stores = stores.clone();
    }

    /** The store of {@code kvHead}. */
    public HeadStore store(int kvHead) {
        return stores[kvHead];
    }
}
