package io.kvcache4j;

import java.util.SplittableRandom;

/**
 * Seeds for randomized tests of every module (kv-api's test jar): {@code -Dkvcache4j.test.seed=N} replays a run; otherwise each test
 * derives its seed from the wall clock and prints it, and every assertion message carries it.
 */
public final class TestSeeds {
    private static final Long FIXED = Long.getLong("kvcache4j.test.seed");

    private TestSeeds() {}

    /** A fresh seed (the fixed one if given), printed with the test's name. */
    public static long seed(String testName) {
        long seed = FIXED != null ? FIXED : System.nanoTime() ^ testName.hashCode();
        System.out.println(
                "[seed] " + testName + " seed=" + seed + " (replay with -Dkvcache4j.test.seed=" + seed + ")");
        return seed;
    }

    public static SplittableRandom random(long seed) {
        return new SplittableRandom(seed);
    }

    /** Fills {@code a[off..off+n)} with values in [-scale, scale). */
    public static void fill(SplittableRandom r, float[] a, int off, int n, float scale) {
        for (int i = 0; i < n; i++) {
            a[off + i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
    }

    /** Fills {@code n} floats with values in [-scale, scale). */
    public static float[] floats(SplittableRandom r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
        return a;
    }
}
