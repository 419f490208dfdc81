package io.kvcache4j.retrieval;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.TreeMap;

/**
 * The key indexes installed in this process, by name, in name order: every {@link KeyIndexProvider}
 * found by {@link ServiceLoader} ({@code flat}, {@code hnsw} and {@code roar} come with this module).
 * Looked up once, on first use. Thread-safe.
 */
public final class KeyIndexes {
    private KeyIndexes() {}

    /** Installed names, in name order. */
    public static List<String> names() {
        return List.copyOf(Holder.PROVIDERS.keySet());
    }

    /** The provider called {@code name} (case-insensitive). */
    public static KeyIndexProvider provider(String name) {
        KeyIndexProvider p = Holder.PROVIDERS.get(name.toLowerCase(Locale.ROOT));
        if (p == null) {
            throw new IllegalArgumentException(
                    "unknown key index '" + name + "'; installed: " + String.join(", ", Holder.PROVIDERS.keySet()));
        }
        return p;
    }

    /** A new index of kind {@code name} over {@code dimension}-component keys. */
    public static KeyIndex create(String name, int dimension, KeyIndexOptions options) {
        return provider(name).create(dimension, options);
    }

    private static final class Holder {
        static final Map<String, KeyIndexProvider> PROVIDERS = load();

        private static Map<String, KeyIndexProvider> load() {
            Map<String, KeyIndexProvider> m = new TreeMap<>();
            for (KeyIndexProvider p : ServiceLoader.load(KeyIndexProvider.class, KeyIndexes.class.getClassLoader())) {
                m.putIfAbsent(p.name().toLowerCase(Locale.ROOT), p);
            }
            return m;
        }
    }
}
