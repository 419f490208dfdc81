package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.FullPolicy;
import java.util.List;
import org.junit.jupiter.api.Test;

class EvictionPoliciesTest {

    @Test
    void theRegistryListsEveryInstalledPolicyAndBuildsItFromABudget() {
        assertEquals(
                List.of(
                        "full",
                        "streaming",
                        "h2o",
                        "h2o-prefill",
                        "snapkv",
                        "hashevict",
                        "lazy",
                        "pyramidinfer",
                        "keep-first"),
                EvictionPolicies.names(),
                "the built-in policies in their order, then the test jar's own provider");
        Budget budget = Budget.parse("0.1").resolve(1000);
        for (String name : EvictionPolicies.names()) {
            EvictionPolicy p = EvictionPolicies.create(name, budget);
            assertEquals(name, p.name());
            if (!name.equals("full") && !name.equals("keep-first")) {
                PolicyConfig c = ((BudgetedPolicy) p).config();
                assertEquals(100, c.budgetTokens(), name);
                assertEquals(4, c.sinkTokens(), name);
                assertEquals(25, c.recentTokens(), "a quarter of the budget, " + name);
                assertEquals(25, c.snapKvWindow(), name);
                assertEquals(7, c.snapKvKernel(), "other parameters at their defaults, " + name);
            }
        }
        var fraction = assertThrows(
                IllegalArgumentException.class, () -> EvictionPolicies.create("h2o", Budget.fraction(0.1)));
        assertEquals(
                "budget 0.1 is a fraction of the prompt; resolve it against the prompt length first (Budget.resolve)",
                fraction.getMessage());
        var unknown = assertThrows(IllegalArgumentException.class, () -> EvictionPolicies.create("tova", budget));
        assertEquals(
                "unknown eviction policy 'tova'; installed: full, streaming, h2o, h2o-prefill, snapkv, hashevict,"
                        + " lazy, pyramidinfer, keep-first",
                unknown.getMessage());
    }

    @Test
    void aPolicyFromAnotherJarRunsInACache() {
        io.kvcache4j.api.ModelShape shape = new io.kvcache4j.api.ModelShape(1, 2, 1, 8);
        try (io.kvcache4j.api.KvCache cache = io.kvcache4j.api.KvCache.builder(shape)
                .policy(EvictionPolicies.create("keep-first", Budget.tokens(10)))
                .build()) {
            float[] row = new float[8 * 30];
            cache.append(0, row, 0, row, 0, 30);
            cache.attend(0, new float[16 * 30], 0, 30, new float[16 * 30], 0);
            assertEquals(10, cache.retainedTokens(0, 0));
            assertEquals(9, cache.view(0, 0).position(9), "the first ten positions stay");
        }
    }

    @Test
    void budgetsResolveByOneRuleAndNeverShrinkSinksOrWindow() {
        assertEquals(205, Budget.parse("0.1").resolve(2048).tokens());
        assertEquals(2, Budget.parse("0.02").withSinkTokens(0).resolve(100).tokens(), "round(0.02 x 100)");
        assertEquals(32, Budget.tokens(2048).recentTokens(), "a quarter, at most 32");
        assertEquals(2, Budget.tokens(10).recentTokens(), "a quarter of 10");
        assertEquals(64, Budget.tokens(2048).withRecentTokens(64).recentTokens());
        assertEquals("0.25", Budget.parse("0.25").toString());
        assertEquals(Budget.parse("2048"), Budget.parse(Budget.tokens(2048).toString()));
        var small = assertThrows(IllegalArgumentException.class, () -> Budget.tokens(5));
        assertEquals(
                "budget of 5 tokens is too small: it must hold 4 sink tokens, a recent window of 1 tokens and at"
                        + " least one more, so at least 6 tokens",
                small.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Budget.parse("0.001").resolve(100));
        for (String bad : new String[] {"0", "-1", "NaN", "1.5", "Infinity", "3e9", "ten"}) {
            var e = assertThrows(IllegalArgumentException.class, () -> Budget.parse(bad), bad);
            assertTrue(e.getMessage().startsWith("budget"), e.getMessage());
        }
    }

    @Test
    void namesAreFixedAndEachCreatesItsPolicy() {
        PolicyConfig config = PolicyConfig.builder().budgetTokens(128).build();
        for (String name : BuiltInPolicies.NAMES) {
            EvictionPolicy p = config.policy(name);
            assertEquals(name, p.name());
            if (!name.equals("full")) {
                assertSame(config, ((BudgetedPolicy) p).config(), name);
            }
        }
        assertSame(FullPolicy.INSTANCE, config.policy(" FULL "));
        assertEquals(H2OPolicy.class, config.policy("H2O").getClass());
    }

    @Test
    void unknownNameListsTheAllowedOnes() {
        PolicyConfig config = PolicyConfig.builder().budgetTokens(128).build();
        var e = assertThrows(IllegalArgumentException.class, () -> config.policy("tova"));
        assertEquals(
                "unknown built-in eviction policy 'tova'; built in: full, streaming, h2o, h2o-prefill, snapkv,"
                        + " hashevict, lazy, pyramidinfer",
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
    void impossibleBudgetsNameTheValueAndTheRange() {
        assertMessage(
                "budgetTokens must be in [1, 2147483647], was 0",
                () -> PolicyConfig.builder().budgetTokens(0));
        assertMessage(
                "budgetTokens must be in [1, 2147483647], was -5",
                () -> PolicyConfig.builder().budgetTokens(-5));
        assertMessage(
                "budgetTokens must be in [1, 2147483647], was 0 (set budgetTokens or budget)",
                () -> PolicyConfig.builder().build());
        assertMessage(
                "budgetTokens 20 must be in [36, 2147483647]: it has to hold sinkTokens 4 + recentTokens 32",
                () -> PolicyConfig.builder().budgetTokens(20).build());
        assertMessage("budget fraction must be in (0, 1), was NaN", () -> Budget.fraction(Double.NaN));
        assertMessage("budget fraction must be in (0, 1), was 1.5", () -> Budget.fraction(1.5));
        assertMessage("budget fraction must be in (0, 1), was -0.1", () -> Budget.fraction(-0.1));
        assertMessage(
                "budget of 1 tokens is too small: it must hold 4 sink tokens, a recent window of 1 tokens and at"
                        + " least one more, so at least 6 tokens",
                () -> Budget.fraction(0.001).resolve(100));
        assertMessage(
                "promptTokens must be in [1, 2147483647], was 0",
                () -> Budget.fraction(0.5).resolve(0));
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
                () -> snap.policy("snapkv"));
        PolicyConfig tight = PolicyConfig.builder()
                .budgetTokens(4)
                .sinkTokens(4)
                .recentTokens(0)
                .build();
        assertMessage(
                "streaming: budgetTokens 4 must be in [5, 2147483647]: sinkTokens 4 plus a window of at least 1 token",
                () -> tight.policy("streaming"));
        assertMessage(
                "pyramidinfer: recentTokens must be in [1, 2147483647], was 0 (the recent queries are the observers)",
                () -> tight.policy("pyramidinfer"));
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        var e = assertThrows(IllegalArgumentException.class, call);
        assertEquals(expected, e.getMessage());
    }
}
