package io.kvcache4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.eviction.BudgetedPolicy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Runs the benchmark states at a small size so the benchmark cannot rot. */
class EvictionBenchmarkTest {

    @ParameterizedTest
    @ValueSource(strings = {"streaming", "h2o", "hashevict", "lazy", "snapkv", "h2o-prefill", "pyramidinfer"})
    void decodeStepRunsAtTheBudget(String name) {
        EvictionBenchmark.PolicyState s = new EvictionBenchmark.PolicyState();
        s.policy = name;
        s.contextTokens = 1024;
        s.budgetTokens = 128;
        s.setupTrial();
        try {
            s.setupIteration();
            boolean oneShot = EvictionBenchmark.ONE_SHOT.contains(name);
            int decoded = 0;
            assertEquals(oneShot ? 128 + 256 : 1024, s.cache.nextPosition(0));
            BudgetedPolicy policy = (BudgetedPolicy) EvictionPolicies.create(name, Budget.tokens(128));
            EvictionBenchmark bench = new EvictionBenchmark();
            for (int t = 0; t < 100; t++) {
                assertTrue(Float.isFinite(bench.decodeStep(s)));
                decoded++;
                long bound = policy.maxRetainedTokens(EvictionBenchmark.SHAPE, 0, 0, decoded);
                assertTrue(s.heldTokens() <= bound, name + " holds " + s.heldTokens() + " > " + bound);
            }
        } finally {
            s.tearDown();
        }
    }

    @Test
    void attentionOnlyAttendsTheGivenTokens() {
        EvictionBenchmark.AttentionState s = new EvictionBenchmark.AttentionState();
        s.attendTokens = 100;
        s.setup();
        try {
            assertEquals(100, s.stores[0].count());
            assertEquals(100, s.stores[1].count());
            assertTrue(Float.isFinite(new EvictionBenchmark().attentionOnly(s)));
        } finally {
            s.tearDown();
        }
    }

    @Test
    void interleavedTimesBothRuns() {
        EvictionBenchmark.AttentionState a = new EvictionBenchmark.AttentionState();
        a.attendTokens = 128;
        a.runSteps = 4;
        EvictionBenchmark.PolicyState p = new EvictionBenchmark.PolicyState();
        p.policy = "streaming";
        p.contextTokens = 256;
        p.budgetTokens = 128;
        EvictionBenchmark.StepTimes t = new EvictionBenchmark.StepTimes();
        a.setup();
        p.setupTrial();
        try {
            p.setupIteration();
            int before = p.cache.nextPosition(0);
            assertTrue(Float.isFinite(new EvictionBenchmark().interleaved(a, p, t)));
            assertEquals(before + 4, p.cache.nextPosition(0), "one decode step per run step");
            assertTrue(t.attentionNs > 0 && t.decodeNs > 0, t.attentionNs + " / " + t.decodeNs);
        } finally {
            p.tearDown();
            a.tearDown();
        }
    }
}
