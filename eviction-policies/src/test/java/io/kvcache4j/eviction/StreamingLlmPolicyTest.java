package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

class StreamingLlmPolicyTest {

    @Test
    void keepsExactlyTheSinksAndTheMostRecentWindow() {
        long seed = TestSeeds.seed("streaming-sinks");
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(2, 4, 2, 16);
        StreamingLlmPolicy.Config config = StreamingLlmPolicy.Config.defaults(Budget.tokens(40, 4, 8));
        try (KvCache cache =
                KvCache.builder(shape).policy(new StreamingLlmPolicy(config)).build()) {
            Streams.prefill(cache, r, 100, 33);
            cache.endPrefill();
            assertHeld(cache, shape, 100, seed);
            float[] k = new float[shape.kvRowFloats()];
            float[] v = new float[shape.kvRowFloats()];
            float[] q = new float[shape.queryRowFloats()];
            float[] out = new float[shape.queryRowFloats()];
            for (int t = 1; t <= 300; t++) {
                Streams.step(cache, r, k, v, q, out);
                assertHeld(cache, shape, 100 + t, seed);
            }
        }
    }

    private static void assertHeld(KvCache cache, ModelShape shape, int tokens, long seed) {
        TreeSet<Integer> expected = Streams.range(0, 4);
        expected.addAll(Streams.range(tokens - 36, tokens));
        for (int l = 0; l < shape.layers(); l++) {
            for (int h = 0; h < shape.kvHeads(); h++) {
                assertEquals(expected, Streams.positions(cache, l, h), "after " + tokens + " tokens, seed=" + seed);
            }
        }
    }

    @Test
    void decodeAttentionSeesExactlyTheBudget() {
        // With one pending token the oldest windowed token leaves before attention: a query that
        // matches only the token that has just left gets no contribution from it.
        ModelShape shape = new ModelShape(1, 1, 1, 8);
        StreamingLlmPolicy.Config config = StreamingLlmPolicy.Config.defaults(Budget.tokens(5, 1, 2));
        try (KvCache cache =
                KvCache.builder(shape).policy(new StreamingLlmPolicy(config)).build()) {
            float[] out = new float[8];
            for (int t = 0; t < 6; t++) {
                float[] key = new float[8];
                key[t] = 1;
                float[] value = new float[8];
                value[t] = 1;
                cache.append(0, key, 0, value, 0, 1);
                float[] q = new float[8];
                q[1] = 40; // token 1 is the first windowed token
                cache.attend(0, q, 0, 1, out, 0);
                if (t == 5) {
                    // held: sink 0, tokens 2..5; token 1 left before this query's attention
                    assertEquals(Streams.range(0, 1).size() + 4, cache.retainedTokens(0, 0));
                    assertEquals(0f, out[1], 1e-6f);
                } else if (t >= 1) {
                    assertEquals(1f, out[1], 1e-3f);
                }
            }
        }
    }
}
