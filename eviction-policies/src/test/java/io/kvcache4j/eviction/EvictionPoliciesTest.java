package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.FullPolicy;
import java.util.List;
import org.junit.jupiter.api.Test;

class EvictionPoliciesTest {

    @Test
    void namesAreFixedAndEachCreatesItsPolicy() {
        assertEquals(
                List.of("full", "streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer"),
                EvictionPolicies.names());
        PolicyConfig config = PolicyConfig.builder().budgetTokens(128).build();
        for (String name : EvictionPolicies.names()) {
            EvictionPolicy p = EvictionPolicies.create(name, config);
            assertEquals(name, p.name());
            if (!name.equals("full")) {
                assertSame(config, ((BudgetedPolicy) p).config(), name);
            }
        }
        assertSame(FullPolicy.INSTANCE, EvictionPolicies.create(" FULL ", config));
        assertEquals(H2OPolicy.class, EvictionPolicies.create("H2O", config).getClass());
    }

    @Test
    void unknownNameListsTheAllowedOnes() {
        PolicyConfig config = PolicyConfig.builder().budgetTokens(128).build();
        var e = assertThrows(IllegalArgumentException.class, () -> EvictionPolicies.create("tova", config));
        assertEquals(
                "unknown eviction policy 'tova'; allowed: full, streaming, h2o, h2o-prefill, snapkv, hashevict,"
                        + " lazy, pyramidinfer",
                e.getMessage());
    }

    @Test
    void defaultsAreThePapersValues() {
        PolicyConfig c = PolicyConfig.builder().budgetTokens(100).build();
        assertEquals(4, c.sinkTokens());
        assertEquals(32, c.recentTokens());
        assertEquals(32, c.snapKvWindow());
        assertEquals(7, c.snapKvKernel());
        assertEquals(PolicyConfig.Pooling.MAX, c.snapKvPooling());
        assertEquals(32, c.hashBits());
        assertEquals(PolicyConfig.HashScoring.ACCUMULATED, c.hashScoring());
        assertEquals(32, c.lazyWindow());
        assertEquals(1.0, c.lazyImportance());
        assertEquals(0.9, c.pyramidPrefillDecay());
        assertEquals(0.1, c.pyramidGenDecay());
        assertEquals(0.9, c.pyramidGenCompressRatio());
        assertEquals(1.2, c.pyramidDistanceWeight());
        assertEquals(16, c.pyramidCompressEvery());
        PolicyConfig copy = c.toBuilder().hashBits(16).build();
        assertEquals(16, copy.hashBits());
        assertEquals(100, copy.budgetTokens());
    }

    @Test
    void budgetFractionRoundsToTokens() {
        assertEquals(
                205, PolicyConfig.builder().budgetFraction(0.1, 2048).build().budgetTokens());
        assertEquals(
                2048, PolicyConfig.builder().budgetFraction(1.0, 2048).build().budgetTokens());
    }

    @Test
    void impossibleBudgetsNameTheValueAndTheRange() {
        assertMessage(
                "budgetTokens must be in [1, 2147483647], was 0",
                () -> PolicyConfig.builder().budgetTokens(0));
        assertMessage(
                "budgetTokens must be in [1, 2147483647], was -5",
                () -> PolicyConfig.builder().budgetTokens(-5));
        assertMessage(
                "budgetTokens must be in [1, 2147483647], was 0 (set budgetTokens or budgetFraction)",
                () -> PolicyConfig.builder().build());
        assertMessage(
                "budgetTokens 20 must be in [36, 2147483647]: it has to hold sinkTokens 4 + recentTokens 32",
                () -> PolicyConfig.builder().budgetTokens(20).build());
        assertMessage(
                "budget fraction must be in (0, 1], was NaN",
                () -> PolicyConfig.builder().budgetFraction(Double.NaN, 100));
        assertMessage(
                "budget fraction must be in (0, 1], was 1.5",
                () -> PolicyConfig.builder().budgetFraction(1.5, 100));
        assertMessage(
                "budget fraction must be in (0, 1], was -0.1",
                () -> PolicyConfig.builder().budgetFraction(-0.1, 100));
        assertMessage(
                "budget fraction 0.001 of 100 prompt tokens is 0 tokens; it must be >= 1 (fraction >= 0.005)",
                () -> PolicyConfig.builder().budgetFraction(0.001, 100));
        assertMessage(
                "promptTokens must be in [1, 2147483647], was 0",
                () -> PolicyConfig.builder().budgetFraction(0.5, 0));
        assertMessage(
                "sinkTokens must be in [0, 2147483647], was -1",
                () -> PolicyConfig.builder().sinkTokens(-1));
        assertMessage(
                "hashBits must be in [1, 64], was 65",
                () -> PolicyConfig.builder().hashBits(65));
        assertMessage(
                "snapKvKernel must be odd and in [1, 2147483647], was 6",
                () -> PolicyConfig.builder().snapKvKernel(6));
        assertMessage(
                "lazyImportance must be in (0, Infinity), was NaN",
                () -> PolicyConfig.builder().lazyImportance(Double.NaN));
        assertMessage(
                "pyramidPrefillDecay must be in (0, 1], was NaN",
                () -> PolicyConfig.builder().pyramidPrefillDecay(Double.NaN));
        assertMessage(
                "pyramidDistanceWeight must be in [1, 1000], was 0.5",
                () -> PolicyConfig.builder().pyramidDistanceWeight(0.5));
    }

    @Test
    void policiesCheckTheirOwnConstraints() {
        PolicyConfig snap = PolicyConfig.builder()
                .budgetTokens(40)
                .sinkTokens(4)
                .recentTokens(8)
                .snapKvWindow(64)
                .build();
        assertMessage(
                "snapkv: budgetTokens 40 must be in [68, 2147483647]: it has to hold sinkTokens 4 + max(recentTokens"
                        + " 8, snapKvWindow 64)",
                () -> EvictionPolicies.create("snapkv", snap));
        PolicyConfig tight = PolicyConfig.builder()
                .budgetTokens(4)
                .sinkTokens(4)
                .recentTokens(0)
                .build();
        assertMessage(
                "streaming: budgetTokens 4 must be in [5, 2147483647]: sinkTokens 4 plus a window of at least 1 token",
                () -> EvictionPolicies.create("streaming", tight));
        assertMessage(
                "pyramidinfer: recentTokens must be in [1, 2147483647], was 0 (the recent queries are the observers)",
                () -> EvictionPolicies.create("pyramidinfer", tight));
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        var e = assertThrows(IllegalArgumentException.class, call);
        assertEquals(expected, e.getMessage());
    }
}
