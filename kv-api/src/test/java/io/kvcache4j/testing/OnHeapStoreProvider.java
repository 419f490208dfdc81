package io.kvcache4j.testing;

import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;

/**
 * {@link OnHeapStore} registered by name through {@code
 * META-INF/services/io.kvcache4j.store.HeadStoreProvider} in the test resources, as a codec's jar
 * registers itself.
 */
public final class OnHeapStoreProvider implements HeadStoreProvider {
    @Override
    public String name() {
        return "onheap";
    }

    @Override
    public String description() {
        return "f32 rows on the heap, attention in plain Java (a test store from outside the kernels)";
    }

    @Override
    public HeadStoreFactory factory(int pageTokens) {
        return OnHeapStore.factory(1, false);
    }
}
