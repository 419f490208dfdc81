package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/**
 * A prompt whose early queries attend to decoys and whose last 32 queries (the observation window)
 * attend to three targets. Keys are orthonormal, so every logit is exactly 6 or 0.
 */
class SnapKvPolicyTest {
    static final int D = 128;
    static final int PROMPT = 100;
    static final int WINDOW = 32;
    static final int[] TARGETS_HEAD0 = {20, 35};
    static final int[] TARGETS_HEAD1 = {35, 50};
    static final int[] DECOYS = {10, 28, 45, 60};

    static final Budget BUDGET = Budget.tokens(4 + WINDOW + 21, 4, 8);
    static final SnapKvPolicy.Config CONFIG = new SnapKvPolicy.Config(BUDGET, WINDOW, 7, SnapKvPolicy.Pooling.MAX);

    @Test
    void keepsTheTokensTheObservationWindowAttendsTo() {
        TreeSet<Integer> kept = run(new SnapKvPolicy(CONFIG));
        // sinks, the 7-wide max-pool neighbourhood of each target, and the window itself
        TreeSet<Integer> expected = Streams.range(0, 4);
        for (int t : new int[] {20, 35, 50}) {
            expected.addAll(Streams.range(t - 3, t + 4));
        }
        expected.addAll(Streams.range(PROMPT - WINDOW, PROMPT));
        assertEquals(57, expected.size());
        assertEquals(expected, kept);
        for (int decoy : DECOYS) {
            assertTrue(!kept.contains(decoy), "decoy " + decoy + " kept");
        }
    }

    @Test
    void averagePoolingKeepsTheTargetsToo() {
        TreeSet<Integer> kept = run(new SnapKvPolicy(CONFIG.withPooling(SnapKvPolicy.Pooling.AVG)));
        for (int t : new int[] {20, 35, 50}) {
            assertTrue(kept.containsAll(Streams.range(t - 1, t + 2)), "target " + t + " kept: " + kept);
        }
        assertEquals(57, kept.size());
    }

    /** The prefill-only H2O at the same budget keeps the decoys that the early queries attended. */
    @Test
    void prefillH2OKeepsWhatTheWholePromptAttendedInstead() {
        TreeSet<Integer> kept = run(new H2OPrefillPolicy(H2OPrefillPolicy.Config.defaults(BUDGET)));
        for (int decoy : DECOYS) {
            assertTrue(kept.contains(decoy), "decoy " + decoy + " evicted by h2o-prefill: " + kept);
        }
        assertEquals(57, kept.size());
    }

    private static TreeSet<Integer> run(EvictionPolicy policy) {
        ModelShape shape = new ModelShape(1, 2, 1, D);
        try (KvCache cache =
                KvCache.builder(shape).dtype(KvDType.F32).policy(policy).build()) {
            float[] keys = new float[PROMPT * D];
            for (int t = 0; t < PROMPT; t++) {
                keys[t * D + t] = 1;
            }
            float[] queries = new float[PROMPT * 2 * D];
            float logit = (float) (6 * Math.sqrt(D));
            for (int t = 0; t < PROMPT; t++) {
                int base = t * 2 * D;
                if (t >= PROMPT - WINDOW) {
                    for (int j : TARGETS_HEAD0) queries[base + j] = logit;
                    for (int j : TARGETS_HEAD1) queries[base + D + j] = logit;
                } else {
                    for (int j : DECOYS) {
                        if (j <= t) {
                            queries[base + j] = logit;
                            queries[base + D + j] = logit;
                        }
                    }
                }
            }
            cache.append(0, keys, 0, keys, 0, PROMPT);
            cache.attend(0, queries, 0, PROMPT, new float[PROMPT * 2 * D], 0);
            assertEquals(PROMPT, cache.retainedTokens(0, 0), "nothing leaves before endPrefill");
            cache.endPrefill();
            return Streams.positions(cache, 0, 0);
        }
    }
}
