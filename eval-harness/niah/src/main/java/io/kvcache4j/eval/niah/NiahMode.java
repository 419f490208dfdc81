package io.kvcache4j.eval.niah;

/** When the cache is compressed relative to the question. */
public enum NiahMode {
    /** The context is prefilled and compressed before the question is appended (as kvpress evaluates). */
    QUERY_AGNOSTIC("query-agnostic"),
    /** The question is part of the prompt when the cache is compressed. */
    QUERY_AWARE("query-aware");

    private final String label;

    NiahMode(String label) {
        this.label = label;
    }

    public String label() {
        return label;
    }

    public static NiahMode parse(String s) {
        for (NiahMode m : values()) {
            if (m.label.equals(s)) {
                return m;
            }
        }
        throw new IllegalArgumentException("unknown mode '" + s + "'; allowed: query-agnostic, query-aware");
    }
}
