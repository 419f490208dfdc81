package io.kvcache4j.eval.cli;

import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Minimal {@code --name value} / {@code --flag} parser. Unknown options are errors, so a typo never
 * silently falls back to a default.
 */
final class Args {
    private final Map<String, String> values = new HashMap<>();
    private final Set<String> flags = new LinkedHashSet<>();

    /**
     * @param withValue options that take a value
     * @param booleanFlags options without a value
     */
    Args(String[] args, List<String> withValue, List<String> booleanFlags) {
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String name = a;
            String inline = null;
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) {
                name = a.substring(0, eq);
                inline = a.substring(eq + 1);
            }
            if (withValue.contains(name)) {
                String v = inline;
                if (v == null) {
                    if (i + 1 >= args.length) {
                        throw new UsageException(name + " needs a value");
                    }
                    v = args[++i];
                }
                values.put(name, v);
            } else if (booleanFlags.contains(name) && inline == null) {
                flags.add(name);
            } else {
                throw new UsageException("unknown option '" + a + "'; allowed: " + withValue + " " + booleanFlags);
            }
        }
    }

    String get(String name, String def) {
        return values.getOrDefault(name, def);
    }

    String get(String name) {
        return values.get(name);
    }

    boolean has(String name) {
        return values.containsKey(name) || flags.contains(name);
    }

    int getInt(String name, int def, int min, int max) {
        String v = values.get(name);
        if (v == null) {
            return def;
        }
        try {
            int x = Integer.parseInt(v.trim());
            if (x < min || x > max) {
                throw new UsageException(name + " " + x + " out of range [" + min + ", " + max + "]");
            }
            return x;
        } catch (NumberFormatException e) {
            throw new UsageException(name + " must be an integer, was '" + v + "'");
        }
    }

    long getLong(String name, long def) {
        String v = values.get(name);
        if (v == null) {
            return def;
        }
        try {
            return Long.parseLong(v.trim());
        } catch (NumberFormatException e) {
            throw new UsageException(name + " must be an integer, was '" + v + "'");
        }
    }
}
