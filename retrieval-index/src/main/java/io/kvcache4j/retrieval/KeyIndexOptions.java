package io.kvcache4j.retrieval;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Named integer settings of a key index ({@code m=16}, {@code ef=128}, {@code seed=7}), as a
 * command line would give them. Immutable; each provider reads the ones it knows with a default and
 * an allowed range and rejects names it does not know.
 */
public final class KeyIndexOptions {
    private static final KeyIndexOptions NONE = new KeyIndexOptions(Map.of());
    private final Map<String, Long> values;

    private KeyIndexOptions(Map<String, Long> values) {
        this.values = Map.copyOf(values);
    }

    /** No options: every setting at its default. */
    public static KeyIndexOptions defaults() {
        return NONE;
    }

    /** Options from {@code name, value} pairs, e.g. {@code of("m", 16, "ef", 128)}. */
    public static KeyIndexOptions of(Object... nameValuePairs) {
        if (nameValuePairs.length % 2 != 0) {
            throw new IllegalArgumentException(
                    "options come in name, value pairs; got " + nameValuePairs.length + " arguments");
        }
        KeyIndexOptions o = NONE;
        for (int i = 0; i < nameValuePairs.length; i += 2) {
            o = o.with((String) nameValuePairs[i], ((Number) nameValuePairs[i + 1]).longValue());
        }
        return o;
    }

    /** Parses {@code name=value[,name=value...]}; the empty string gives the defaults. */
    public static KeyIndexOptions parse(String spec) {
        KeyIndexOptions o = NONE;
        if (spec == null || spec.isBlank()) {
            return o;
        }
        for (String part : spec.split(",")) {
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("option '" + part + "' is not name=value");
            }
            String value = part.substring(eq + 1).trim();
            try {
                o = o.with(part.substring(0, eq).trim(), Long.parseLong(value));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("option '" + part + "' needs an integer value, was '" + value + "'");
            }
        }
        return o;
    }

    /** These options with {@code name} set to {@code value}. */
    public KeyIndexOptions with(String name, long value) {
        Map<String, Long> m = new LinkedHashMap<>(values);
        m.put(name, value);
        return new KeyIndexOptions(m);
    }

    /** The names set. */
    public Set<String> names() {
        return new TreeSet<>(values.keySet());
    }

    /**
     * The value of {@code name}, or {@code def} when unset.
     *
     * @throws IllegalArgumentException if the value is outside {@code [min, max]}
     */
    public int intValue(String name, int def, int min, int max) {
        long v = longValue(name, def);
        if (v < min || v > max) {
            throw new IllegalArgumentException("option " + name + "=" + v + " out of range [" + min + ", " + max + "]");
        }
        return (int) v;
    }

    /** The value of {@code name}, or {@code def} when unset. */
    public long longValue(String name, long def) {
        Long v = values.get(name);
        return v == null ? def : v;
    }

    /** Rejects names outside {@code known}, naming them and the known ones. */
    void checkKnown(String index, Set<String> known) {
        for (String n : values.keySet()) {
            if (!known.contains(n)) {
                throw new IllegalArgumentException(
                        "unknown option '" + n + "' for key index " + index + "; known: " + new TreeSet<>(known));
            }
        }
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (String n : names()) {
            sb.append(sb.isEmpty() ? "" : ",").append(n).append('=').append(values.get(n));
        }
        return sb.toString();
    }
}
