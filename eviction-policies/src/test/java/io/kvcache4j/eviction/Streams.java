package io.kvcache4j.eviction;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.HeadView;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import java.util.SplittableRandom;
import java.util.TreeSet;

/** Drives a cache with random tokens: prefill chunks, then decode steps, every layer alike. */
final class Streams {
    private Streams() {}

    /** Appends and attends {@code tokens} random tokens on every layer, in chunks of at most {@code chunk}. */
    static void prefill(KvCache cache, SplittableRandom r, int tokens, int chunk) {
        ModelShape s = cache.shape();
        int done = 0;
        while (done < tokens) {
            int n = Math.min(chunk, tokens - done);
            float[] k = TestSeeds.floats(r, n * s.kvRowFloats(), 1);
            float[] v = TestSeeds.floats(r, n * s.kvRowFloats(), 1);
            float[] q = TestSeeds.floats(r, n * s.queryRowFloats(), 1);
            float[] out = new float[n * s.queryRowFloats()];
            for (int l = 0; l < s.layers(); l++) {
                cache.append(l, k, 0, v, 0, n);
                cache.attend(l, q, 0, n, out, 0);
            }
            done += n;
        }
    }

    /** One random decode step on every layer, with caller-owned buffers (no allocation). */
    static void step(KvCache cache, SplittableRandom r, float[] k, float[] v, float[] q, float[] out) {
        ModelShape s = cache.shape();
        TestSeeds.fill(r, k, 0, s.kvRowFloats(), 1);
        TestSeeds.fill(r, v, 0, s.kvRowFloats(), 1);
        TestSeeds.fill(r, q, 0, s.queryRowFloats(), 1);
        for (int l = 0; l < s.layers(); l++) {
            cache.append(l, k, 0, v, 0, 1);
            cache.attend(l, q, 0, 1, out, 0);
        }
    }

    /** Positions that ({@code layer}, {@code kvHead}) holds. */
    static TreeSet<Integer> positions(KvCache cache, int layer, int kvHead) {
        HeadView view = cache.view(layer, kvHead);
        TreeSet<Integer> set = new TreeSet<>();
        for (int s = 0; s < view.count(); s++) {
            set.add(view.position(s));
        }
        return set;
    }

    /** {@code [from, to)} as a sorted set. */
    static TreeSet<Integer> range(int from, int to) {
        TreeSet<Integer> set = new TreeSet<>();
        for (int i = from; i < to; i++) {
            set.add(i);
        }
        return set;
    }
}
