package io.kvcache4j.store;

/**
 * A named kind of storage that can be installed by putting a jar on the class path: the exact
 * types ({@code f32}, {@code f16}, {@code bf16}) come with kv-api, quantizing codecs and tiers with
 * their modules, each listed in {@code META-INF/services/io.kvcache4j.store.HeadStoreProvider}.
 * {@link HeadStores} finds them with {@link java.util.ServiceLoader}.
 */
public interface HeadStoreProvider {

    /** The name used on the command line and in reports, lower case, e.g. {@code int4}. */
    String name();

    /** One line on what the storage keeps, e.g. {@code exact binary16 rows}. */
    String description();

    /** A factory for caches with this storage and the given page size where the storage pages. */
    HeadStoreFactory factory(int pageTokens);
}
