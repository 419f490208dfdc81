package io.kvcache4j.eviction;

import java.util.SplittableRandom;

/**
 * Seeds for randomized tests: {@code -Dkvcache4j.test.seed=N} replays a run; otherwise each test
 * derives its seed from the wall clock and prints it, and every assertion message carries it.
 */
final class TestSeeds {
    private static final Long FIXED = Long.getLong("kvcache4j.test.seed");

    private TestSeeds() {}

    /** A fresh seed (the fixed one if given), printed with the test's name. */
    static long seed(String testName) {
        long seed = FIXED != null ? FIXED : System.nanoTime() ^ testName.hashCode();
        System.out.println(
                "[seed] " + testName + " seed=" + seed + " (replay with -Dkvcache4j.test.seed=" + seed + ")");
        return seed;
    }

    static SplittableRandom random(long seed) {
        return new SplittableRandom(seed);
    }

    /** Fills {@code a[off..off+n)} with values in [-scale, scale). */
    static void fill(SplittableRandom r, float[] a, int off, int n, float scale) {
        for (int i = 0; i < n; i++) {
            a[off + i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
    }

    static float[] floats(SplittableRandom r, int n, float scale) {
        float[] a = new float[n];
        fill(r, a, 0, n, scale);
        return a;
    }
}
