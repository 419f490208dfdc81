package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** No policy is a silent no-op: after the same stream it holds fewer bytes than the full cache. */
class NoOpTest {
    static final ModelShape SHAPE = new ModelShape(2, 4, 2, 32);

    @ParameterizedTest
    @ValueSource(strings = {"streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer"})
    void compressedCacheHoldsFewerBytesThanFull(String name) {
        long seed = TestSeeds.seed("no-op-" + name);
        Budget budget = Budget.tokens(64, 4, 16);
        BudgetedPolicy policy = switch (name) {
            case "snapkv" ->
                new SnapKvPolicy(SnapKvPolicy.Config.defaults(budget).withWindow(16));
            case "lazy" ->
                new LazyEvictionPolicy(
                        LazyEvictionPolicy.Config.defaults(budget).withWindow(16));
            default -> (BudgetedPolicy) EvictionPolicies.create(name, budget);
        };
        int prompt = 256;
        int decode = 64;
        try (KvCache cache = KvCache.builder(SHAPE).policy(policy).build();
                KvCache full = KvCache.builder(SHAPE).build()) {
            for (KvCache c : new KvCache[] {cache, full}) {
                SplittableRandom r = TestSeeds.random(seed);
                Streams.prefill(c, r, prompt, 64);
                c.endPrefill();
                float[] k = new float[SHAPE.kvRowFloats()];
                float[] v = new float[SHAPE.kvRowFloats()];
                float[] q = new float[SHAPE.queryRowFloats()];
                float[] out = new float[SHAPE.queryRowFloats()];
                for (int t = 0; t < decode; t++) {
                    Streams.step(c, r, k, v, q, out);
                }
            }
            StringBuilder held = new StringBuilder();
            for (int l = 0; l < SHAPE.layers(); l++) {
                for (int h = 0; h < SHAPE.kvHeads(); h++) {
                    assertEquals(prompt + decode, full.retainedTokens(l, h));
                    assertTrue(cache.retainedTokens(l, h) <= policy.maxRetainedTokens(SHAPE, l, h, decode));
                    held.append(' ').append(cache.retainedTokens(l, h));
                }
            }
            System.out.printf(
                    "[no-op] %-12s bytesHeld %7d vs full %7d (%.1f%%), tokens per (layer, head):%s of %d%n",
                    name,
                    cache.bytesHeld(),
                    full.bytesHeld(),
                    100.0 * cache.bytesHeld() / full.bytesHeld(),
                    held,
                    prompt + decode);
            assertTrue(
                    cache.bytesHeld() < full.bytesHeld(),
                    name + " holds " + cache.bytesHeld() + " bytes, full " + full.bytesHeld() + ", seed=" + seed);
            assertTrue(cache.metadataBytes() > 0, name + " keeps no metadata");
        }
    }
}
