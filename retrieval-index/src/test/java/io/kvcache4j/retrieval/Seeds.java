package io.kvcache4j.retrieval;

/** The tests' seed: {@code -Dretrieval.seed=...} or a fixed default; printed so a failure can be rerun. */
final class Seeds {
    private Seeds() {}

    static long seed(String test) {
        long seed = Long.getLong("retrieval.seed", 20260412L);
        System.out.println(test + ": seed " + seed + " (rerun with -Dretrieval.seed=" + seed + ")");
        return seed;
    }
}
