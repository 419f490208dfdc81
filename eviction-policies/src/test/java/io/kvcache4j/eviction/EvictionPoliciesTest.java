package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.EvictionPolicy;
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
                BudgetedPolicy b = (BudgetedPolicy) p;
                assertEquals(100, b.budget().tokens(), name);
                assertEquals(4, b.budget().sinkTokens(), name);
                assertEquals(25, b.budget().recentTokens(), "a quarter of the budget, " + name);
                assertEquals(budget, b.budget(), name);
            }
        }
        assertEquals(
                SnapKvPolicy.Config.defaults(budget),
                ((SnapKvPolicy) EvictionPolicies.create("snapkv", budget)).config(),
                "other parameters at their defaults");
        assertEquals(
                "h2o Config[budget=100]", EvictionPolicies.create("h2o", budget).toString());
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
    void defaultsAreThePapersValues() {
        Budget b = Budget.tokens(128);
        assertEquals(4, b.sinkTokens());
        assertEquals(32, b.recentTokens());
        SnapKvPolicy.Config snap = SnapKvPolicy.Config.defaults(b);
        assertEquals(new SnapKvPolicy.Config(b, 32, 7, SnapKvPolicy.Pooling.MAX), snap);
        HashEvictPolicy.Config hash = HashEvictPolicy.Config.defaults(b);
        assertEquals(
                new HashEvictPolicy.Config(b, 32, 0x243F6A8885A308D3L, HashEvictPolicy.HashScoring.ACCUMULATED), hash);
        assertEquals(new LazyEvictionPolicy.Config(b, 32, 1.0), LazyEvictionPolicy.Config.defaults(b));
        assertEquals(new PyramidInferPolicy.Config(b, 0.9, 0.1, 0.9, 1.2, 16), PyramidInferPolicy.Config.defaults(b));
        assertEquals(
                new SnapKvPolicy.Config(b, 64, 5, SnapKvPolicy.Pooling.AVG),
                snap.withWindow(64).withKernel(5).withPooling(SnapKvPolicy.Pooling.AVG));
        assertEquals(
                new HashEvictPolicy.Config(b, 16, 7, HashEvictPolicy.HashScoring.MEAN),
                hash.withBits(16).withSeed(7).withScoring(HashEvictPolicy.HashScoring.MEAN));
        assertEquals(
                new LazyEvictionPolicy.Config(b, 8, 2.5),
                LazyEvictionPolicy.Config.defaults(b).withWindow(8).withImportance(2.5));
        assertEquals(
                new PyramidInferPolicy.Config(b, 0.5, 0.2, 0.8, 2.0, 8),
                PyramidInferPolicy.Config.defaults(b)
                        .withPrefillDecay(0.5)
                        .withGenDecay(0.2)
                        .withGenCompressRatio(0.8)
                        .withDistanceWeight(2.0)
                        .withCompressEvery(8));
        for (String name : List.of("streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer")) {
            assertSame(b, ((BudgetedPolicy) EvictionPolicies.create(name, b)).budget(), name);
        }
    }

    @Test
    void impossibleValuesNameTheValueAndTheRange() {
        Budget b = Budget.tokens(128);
        assertMessage(
                "snapkv: window must be in [1, 2147483647], was 0",
                () -> new SnapKvPolicy.Config(b, 0, 7, SnapKvPolicy.Pooling.MAX));
        assertMessage(
                "snapkv: kernel must be odd and in [1, 2147483647], was 6",
                () -> SnapKvPolicy.Config.defaults(b).withKernel(6));
        assertMessage(
                "hashevict: bits must be in [1, 64], was 65",
                () -> HashEvictPolicy.Config.defaults(b).withBits(65));
        assertMessage(
                "hashevict: bits must be in [1, 64], was 0",
                () -> HashEvictPolicy.Config.defaults(b).withBits(0));
        assertMessage(
                "lazy: window must be in [1, 2147483647], was 0",
                () -> LazyEvictionPolicy.Config.defaults(b).withWindow(0));
        assertMessage(
                "lazy: importance must be in (0, Infinity), was NaN",
                () -> LazyEvictionPolicy.Config.defaults(b).withImportance(Double.NaN));
        assertMessage(
                "pyramidinfer: prefillDecay must be in (0, 1], was NaN",
                () -> PyramidInferPolicy.Config.defaults(b).withPrefillDecay(Double.NaN));
        assertMessage(
                "pyramidinfer: genCompressRatio must be in (0, 1], was 1.5",
                () -> PyramidInferPolicy.Config.defaults(b).withGenCompressRatio(1.5));
        assertMessage(
                "pyramidinfer: distanceWeight must be in [1, 1000], was 0.5",
                () -> PyramidInferPolicy.Config.defaults(b).withDistanceWeight(0.5));
        assertMessage(
                "pyramidinfer: compressEvery must be in [1, 2147483647], was 0",
                () -> PyramidInferPolicy.Config.defaults(b).withCompressEvery(0));
        assertThrows(
                NullPointerException.class,
                () -> SnapKvPolicy.Config.defaults(b).withPooling(null));
        assertThrows(
                NullPointerException.class,
                () -> HashEvictPolicy.Config.defaults(b).withScoring(null));
        assertThrows(NullPointerException.class, () -> new H2OPolicy.Config(null));
        assertMessage(
                "budget 0.1 is a fraction of the prompt; resolve it against the prompt length first (Budget.resolve)",
                () -> new H2OPolicy.Config(Budget.fraction(0.1)));
    }

    @Test
    void policiesCheckTheirOwnConstraints() {
        Budget snap = Budget.tokens(40).withRecentTokens(8);
        assertMessage(
                "snapkv: budget of 40 tokens must be in [68, 2147483647]: it has to hold sinkTokens 4 + max(recentTokens"
                        + " 8, window 64)",
                () -> new SnapKvPolicy(SnapKvPolicy.Config.defaults(snap).withWindow(64)));
        assertEquals(
                7,
                ((SnapKvPolicy) EvictionPolicies.create("snapkv", Budget.tokens(30)))
                        .config()
                        .window(),
                "by name, the observation window is the budget's recent window");
    }

    private static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        var e = assertThrows(IllegalArgumentException.class, call);
        assertEquals(expected, e.getMessage());
    }
}
