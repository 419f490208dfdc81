package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import org.junit.jupiter.api.Test;

/**
 * A stream with local attention (each query attends the two previous tokens) and one token, at
 * position 1, that every 8th query comes back to. Keys are orthonormal, so every logit is exactly 6
 * or 0. H2O drops the recurring token before its second return (its accumulated mass, 1/3 per
 * return, falls below that of the local tokens, about 1 each); LazyEviction at the same budget keeps it for the whole stream.
 */
class LazyEvictionPolicyTest {
    static final int D = 128;
    static final int STEPS = 128;
    static final int PERIOD = 8;
    static final int RECURRING = 1;

    static final Budget BUDGET = Budget.tokens(9, 1, 4);
    static final LazyEvictionPolicy.Config CONFIG =
            LazyEvictionPolicy.Config.defaults(BUDGET).withWindow(8);

    @Test
    void lazyKeepsARecurringTokenThatH2ODrops() {
        int[] lazyHeld = new int[1];
        Capture lazy = new Capture(new LazyEvictionPolicy(CONFIG));
        int lazyLastSeen = run(lazy, lazyHeld);
        int h2oLastSeen = run(new H2OPolicy(H2OPolicy.Config.defaults(BUDGET)), new int[1]);
        System.out.println("[lazy] recurring token (period " + PERIOD + ") last held at step: lazy " + lazyLastSeen
                + ", h2o " + h2oLastSeen + " (of " + STEPS + "); lazy holds " + lazyHeld[0] + " tokens at the end");
        assertEquals(STEPS - 1, lazyLastSeen, "lazy held the recurring token to the end");
        assertTrue(
                h2oLastSeen >= PERIOD && h2oLastSeen < 2 * PERIOD,
                "h2o drops it between its first and second return, but held it until " + h2oLastSeen);
        assertTrue(lazyHeld[0] <= 9 + 8 - 1);

        LazyEvictionPolicy.Tracker tracker = lazy.tracker();
        // the tracker saw the period: last important at step 120, maximum recurrence interval 8
        try (KvCache cache = KvCache.builder(new ModelShape(1, 1, 1, D))
                .dtype(KvDType.F32)
                .policy(lazy)
                .build()) {
            drive(cache, STEPS);
            tracker = lazy.tracker();
            HeadSlots head = tracker.heads[0][0];
            long[] state = head.longColumn(tracker.stateColumn);
            boolean found = false;
            for (int s = 0; s < head.count(); s++) {
                if (head.position(s) == RECURRING) {
                    assertEquals(120, LazyEvictionPolicy.Tracker.lastImportant(state[s]));
                    assertEquals(PERIOD, LazyEvictionPolicy.Tracker.maxInterval(state[s]));
                    found = true;
                }
            }
            assertTrue(found);
        }
    }

    @Test
    void evictsOncePerWindowInBatches() {
        try (KvCache cache = KvCache.builder(new ModelShape(1, 1, 1, D))
                .dtype(KvDType.F32)
                .policy(new LazyEvictionPolicy(CONFIG))
                .build()) {
            int[] held = new int[STEPS];
            for (int t = 0; t < STEPS; t++) {
                step(cache, t);
                held[t] = cache.retainedTokens(0, 0);
            }
            // grows to budget + W - 1 = 16, drops back to 9 at 17, and so on every 8 steps
            assertEquals(16, held[15]);
            assertEquals(9, held[16]);
            assertEquals(16, held[23]);
            assertEquals(9, held[24]);
            for (int t = 16; t < STEPS; t++) {
                assertEquals(9 + (t - 16) % 8, held[t], "step " + t);
            }
        }
    }

    /** Runs the stream; returns the last step after which {@link #RECURRING} was held. */
    private static int run(EvictionPolicy policy, int[] heldAtEnd) {
        try (KvCache cache = KvCache.builder(new ModelShape(1, 1, 1, D))
                .dtype(KvDType.F32)
                .policy(policy)
                .build()) {
            int lastSeen = -1;
            for (int t = 0; t < STEPS; t++) {
                step(cache, t);
                if (Streams.positions(cache, 0, 0).contains(RECURRING)) {
                    lastSeen = t;
                }
            }
            heldAtEnd[0] = cache.retainedTokens(0, 0);
            return lastSeen;
        }
    }

    private static void drive(KvCache cache, int steps) {
        for (int t = 0; t < steps; t++) {
            step(cache, t);
        }
    }

    private static void step(KvCache cache, int t) {
        float[] key = new float[D];
        key[t] = 1;
        cache.append(0, key, 0, key, 0, 1);
        float[] q = new float[D];
        float logit = (float) (6 * Math.sqrt(D));
        if (t == 2 || t == 3) {
            q[0] = logit;
        } else if (t >= 4) {
            q[t - 1] = logit;
            q[t - 2] = logit;
            if (t % PERIOD == 0) {
                q[RECURRING] = logit;
            }
        }
        cache.attend(0, q, 0, 1, new float[D], 0);
        assertFalse(t < 4 && cache.retainedTokens(0, 0) != t + 1);
    }
}
