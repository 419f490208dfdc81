package io.kvcache4j.store;

import io.kvcache4j.api.KvDType;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceLoader;

/**
 * The storage kinds installed in this process, by name: kv-api's exact types first ({@code f16},
 * {@code bf16}, {@code f32}), then every {@link HeadStoreProvider} found by {@link ServiceLoader} in
 * name order. Looked up once, on first use. Thread-safe.
 */
public final class HeadStores {
    private HeadStores() {}

    /** Installed names, exact types first. */
    public static List<String> names() {
        return List.copyOf(Holder.PROVIDERS.keySet());
    }

    /**
     * The provider called {@code name} (case-insensitive). A name may carry options after the storage's
     * name, {@code name:key=value[:key=value ...]} (e.g. {@code int4:g=64:r=0}), handed to {@link
     * HeadStoreProvider#withOptions}; a storage that takes none refuses them.
     *
     * @throws IllegalArgumentException for an unknown storage or malformed, unknown or out-of-range
     *     options, naming the value
     */
    public static HeadStoreProvider provider(String name) {
        String lower = name.toLowerCase(Locale.ROOT);
        int colon = lower.indexOf(':');
        String base = colon < 0 ? lower : lower.substring(0, colon);
        HeadStoreProvider p = Holder.PROVIDERS.get(base);
        if (p == null) {
            throw new IllegalArgumentException(
                    "unknown storage '" + name + "'; installed: " + String.join(", ", Holder.PROVIDERS.keySet()));
        }
        return colon < 0 ? p : p.withOptions(lower, options(name, lower.substring(colon + 1)));
    }

    /** {@code key=value[:key=value ...]} as an ordered map; keys unique and non-empty. */
    private static Map<String, String> options(String name, String text) {
        Map<String, String> options = new LinkedHashMap<>();
        for (String option : text.split(":", -1)) {
            int eq = option.indexOf('=');
            if (eq <= 0 || eq == option.length() - 1) {
                throw new IllegalArgumentException("storage '" + name + "': option '" + option
                        + "' must be key=value (options: name:key=value[:key=value ...])");
            }
            String key = option.substring(0, eq);
            if (options.put(key, option.substring(eq + 1)) != null) {
                throw new IllegalArgumentException("storage '" + name + "': option '" + key + "' given twice");
            }
        }
        return Collections.unmodifiableMap(options);
    }

    /** A factory for storage {@code name} with pages of {@code pageTokens} tokens. */
    public static HeadStoreFactory factory(String name, int pageTokens) {
        return provider(name).factory(pageTokens);
    }

    /** The provider of exact storage in {@code type}. */
    static HeadStoreProvider exact(KvDType type) {
        String name = type.name().toLowerCase(Locale.ROOT);
        return new HeadStoreProvider() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public String description() {
                return switch (type) {
                    case F32 -> "exact binary32 rows";
                    case F16 -> "exact binary16 rows";
                    case BF16 -> "exact bfloat16 rows";
                };
            }

            @Override
            public HeadStoreFactory factory(int pageTokens) {
                return HeadStoreFactory.exact(type, pageTokens);
            }
        };
    }

    private static final class Holder {
        static final Map<String, HeadStoreProvider> PROVIDERS = load();

        private static Map<String, HeadStoreProvider> load() {
            Map<String, HeadStoreProvider> map = new LinkedHashMap<>();
            for (KvDType t : List.of(KvDType.F16, KvDType.BF16, KvDType.F32)) {
                HeadStoreProvider p = exact(t);
                map.put(p.name(), p);
            }
            List<HeadStoreProvider> found = new ArrayList<>();
            ServiceLoader.load(HeadStoreProvider.class, HeadStores.class.getClassLoader())
                    .forEach(found::add);
            found.sort((a, b) -> a.name().compareTo(b.name()));
            for (HeadStoreProvider p : found) {
                String name = p.name().toLowerCase(Locale.ROOT);
                HeadStoreProvider previous = map.putIfAbsent(name, p);
                if (previous != null) {
                    throw new IllegalStateException("two storage providers are called '" + name + "': "
                            + previous.getClass().getName() + " and "
                            + p.getClass().getName());
                }
            }
            return Collections.unmodifiableMap(map);
        }
    }
}
