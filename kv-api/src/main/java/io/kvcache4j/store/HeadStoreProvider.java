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

    /**
     * This storage configured by {@code options}, for the name {@code name} ({@code
     * base:key=value[:key=value ...]}, lower case; {@link HeadStores#provider} parses it): the returned
     * provider answers to {@code name}. Each storage documents its options. Default: no options.
     *
     * @throws IllegalArgumentException for an option this storage does not take, or a value out of
     *     its range, naming the option, the value and what is allowed
     */
    default HeadStoreProvider withOptions(String name, java.util.Map<String, String> options) {
        throw new IllegalArgumentException("storage '" + name() + "' takes no options, was '" + name + "'");
    }

    /**
     * Whether this storage is sized by a {@link io.kvcache4j.api.Budget} of its own, such as the fast
     * tier of tiered storage: then {@link #factory(int, io.kvcache4j.api.Budget, int)} gives the
     * factory, and a harness hands the budget to the storage rather than to an eviction policy.
     * Default {@code false}.
     */
    default boolean sizedByBudget() {
        return false;
    }

    /**
     * A factory for caches whose budgeted part holds {@code budget} for a prompt of {@code
     * promptTokens} tokens (a fraction is resolved against it). Default: {@link #factory(int)}.
     *
     * @throws IllegalArgumentException for a budget the storage cannot honour
     */
    default HeadStoreFactory factory(int pageTokens, io.kvcache4j.api.Budget budget, int promptTokens) {
        return factory(pageTokens);
    }
}
