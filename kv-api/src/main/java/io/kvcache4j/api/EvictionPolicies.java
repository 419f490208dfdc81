package io.kvcache4j.api;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceLoader;

/**
 * The eviction policies installed in this process, by name: {@code full} first, then every {@link
 * EvictionPolicyProvider} that {@link ServiceLoader} finds, in a fixed order (the built-in ones as
 * published, others by name). Looked up once, on first use. Thread-safe.
 */
public final class EvictionPolicies {
    private static final List<String> BUILT_IN_ORDER =
            List.of("full", "streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer");

    private EvictionPolicies() {}

    /** Installed names, {@code full} first. */
    public static List<String> names() {
        return List.copyOf(Holder.PROVIDERS.keySet());
    }

    /** The provider called {@code name} (case-insensitive). */
    public static EvictionPolicyProvider provider(String name) {
        EvictionPolicyProvider p = Holder.PROVIDERS.get(name.trim().toLowerCase(Locale.ROOT));
        if (p == null) {
            throw new IllegalArgumentException("unknown eviction policy '" + name + "'; installed: "
                    + String.join(", ", Holder.PROVIDERS.keySet()));
        }
        return p;
    }

    /**
     * The policy {@code name} for a budget resolved to tokens.
     *
     * @throws IllegalArgumentException for an unknown name, a fraction budget, or a budget the policy
     *     cannot honour (the message names the value and the allowed range)
     */
    public static EvictionPolicy create(String name, Budget budget) {
        if (budget.isFraction()) {
            throw new IllegalArgumentException("budget " + budget
                    + " is a fraction of the prompt; resolve it against the prompt length first (Budget.resolve)");
        }
        return provider(name).create(budget);
    }

    private static final class Holder {
        static final Map<String, EvictionPolicyProvider> PROVIDERS = load();

        private static Map<String, EvictionPolicyProvider> load() {
            List<EvictionPolicyProvider> found = new ArrayList<>();
            found.add(new FullPolicy.Provider());
            ServiceLoader.load(EvictionPolicyProvider.class, EvictionPolicies.class.getClassLoader())
                    .forEach(found::add);
            found.sort((a, b) -> {
                int ia = BUILT_IN_ORDER.indexOf(a.name());
                int ib = BUILT_IN_ORDER.indexOf(b.name());
                if (ia >= 0 || ib >= 0) {
                    return Integer.compare(ia < 0 ? Integer.MAX_VALUE : ia, ib < 0 ? Integer.MAX_VALUE : ib);
                }
                return a.name().compareTo(b.name());
            });
            Map<String, EvictionPolicyProvider> map = new LinkedHashMap<>();
            for (EvictionPolicyProvider p : found) {
                String name = p.name().toLowerCase(Locale.ROOT);
                EvictionPolicyProvider previous = map.putIfAbsent(name, p);
                if (previous != null) {
                    throw new IllegalStateException("two eviction policy providers are called '" + name + "': "
                            + previous.getClass().getName() + " and "
                            + p.getClass().getName());
                }
            }
            return Collections.unmodifiableMap(map);
        }
    }
}
