package io.kvcache4j.quantization;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.HeadView;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.eviction.BudgetedPolicy;
import io.kvcache4j.eviction.PyramidInferPolicy;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.NativeMemory;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every installed eviction policy on every codec, through {@code KvCacheBuilder.store}: after every
 * attend call past the prompt each head holds at most the policy's declared bound plus {@code
 * 3(g − 1)} on a store of granularity {@code g} (whole groups leave; the groups straddling the sinks'
 * and the recent window's edges stay), sinks and recent window survive, the compressed cache holds
 * fewer bytes than the full cache on the same codec whenever the prompt exceeds the budget, and than
 * exact f16 where the codec holds the full context in fewer bytes than f16, and the process's live native bytes are exactly what the caches report, back to zero after
 * close.
 */
class PolicyCompositionTest {

    /** Codecs small enough for budgets of tens of tokens; the residual fits any budget drawn. */
    static Stream<Arguments> policiesAndCodecs() {
        return EvictionPolicies.names().stream()
                .flatMap(name ->
                        Stream.of(Arguments.of(name, "int8"), Arguments.of(name, "int4"), Arguments.of(name, "int2")));
    }

    private static HeadStoreFactory factory(String codec, int pageTokens) {
        return switch (codec) {
            case "int8" -> new Int8Config(pageTokens).factory();
            case "int4" -> new KiviConfig(4, 8, 16, 8).factory(pageTokens);
            case "int2" -> new KiviConfig(2, 4, 8, 8).factory(pageTokens);
            default -> throw new IllegalArgumentException(codec);
        };
    }

    @ParameterizedTest
    @MethodSource("policiesAndCodecs")
    void budgetBoundHoldsAndBytesDrop(String name, String codec) {
        long seed = TestSeeds.seed("composition-" + name + "-" + codec);
        SplittableRandom r = TestSeeds.random(seed);
        for (int sc = 0; sc < 4; sc++) {
            String where = name + " on " + codec + " scenario " + sc + " seed=" + seed;
            int kvHeads = 1 + r.nextInt(2);
            ModelShape shape =
                    new ModelShape(1 + r.nextInt(2), kvHeads * (1 + r.nextInt(3)), kvHeads, 8 * (1 + r.nextInt(3)));
            int sinks = r.nextInt(6);
            int recent = 1 + r.nextInt(12);
            int budgetTokens = Math.max(16, sinks + recent + 1 + r.nextInt(40));
            Budget budget = Budget.tokens(budgetTokens).withSinkTokens(sinks).withRecentTokens(recent);
            EvictionPolicy policy = EvictionPolicies.create(name, budget);
            int pageTokens = 16 * (1 + r.nextInt(2));
            HeadStoreFactory store = factory(codec, pageTokens);
            int g = codec.equals("int8") ? 1 : codec.equals("int4") ? 8 : 4;
            if (!codec.equals("int8")) {
                (codec.equals("int4") ? new KiviConfig(4, 8, 16, 8) : new KiviConfig(2, 4, 8, 8)).check(budget);
            }
            boolean mustEvict = sc % 2 == 0 && policy instanceof BudgetedPolicy;
            int prompt = sc % 2 == 0 ? budgetTokens + 64 + r.nextInt(150) : 1 + r.nextInt(200);
            int chunk = 1 + r.nextInt(64);
            int decode = 30 + r.nextInt(60);
            long liveBefore = NativeMemory.liveBytes();
            try (KvCache cache =
                            KvCache.builder(shape).policy(policy).store(store).build();
                    KvCache full = KvCache.builder(shape).store(store).build();
                    KvCache exact = KvCache.builder(shape).build()) {
                SplittableRandom stream = TestSeeds.random(r.nextLong());
                feed(stream, prompt, chunk, cache, full, exact);
                cache.endPrefill();
                full.endPrefill();
                exact.endPrefill();
                check(policy, cache, 0, g, where + " after endPrefill (prompt " + prompt + ")");
                for (int t = 1; t <= decode; t++) {
                    feed(stream, 1, 1, cache, full, exact);
                    check(policy, cache, t, g, where + " after decode step " + t);
                }
                assertTrue(
                        cache.bytesHeld() <= full.bytesHeld(),
                        where + ": " + cache.bytesHeld() + " > full " + full.bytesHeld());
                if (mustEvict) {
                    assertTrue(
                            cache.bytesHeld() < full.bytesHeld(),
                            where + ": holds as many bytes as the full " + codec + " cache (" + full.bytesHeld() + ")");
                    // Below exact f16 too, where the codec itself is: at the smallest head sizes
                    // drawn (8), a codec's scales, zeros and f16 residual can outweigh f16 (int2
                    // here: 38,400 bytes for the context exact f16 holds in 24,576), and a one-shot
                    // policy keeps every decode token.
                    if (full.bytesHeld() < exact.bytesHeld()) {
                        assertTrue(
                                cache.bytesHeld() < exact.bytesHeld(),
                                where + ": " + cache.bytesHeld() + " bytes, not below exact f16 " + exact.bytesHeld());
                    }
                }
                assertEquals(
                        cache.bytesHeld() + full.bytesHeld() + exact.bytesHeld(),
                        NativeMemory.liveBytes() - liveBefore,
                        where + ": live off-heap bytes do not match bytesHeld");
            }
            assertEquals(liveBefore, NativeMemory.liveBytes(), where + ": native bytes left after close");
        }
    }

    private static void feed(SplittableRandom r, int tokens, int chunk, KvCache... caches) {
        ModelShape s = caches[0].shape();
        int done = 0;
        while (done < tokens) {
            int n = Math.min(chunk, tokens - done);
            for (int l = 0; l < s.layers(); l++) {
                float[] k = TestSeeds.floats(r, n * s.kvRowFloats(), 1);
                float[] v = TestSeeds.floats(r, n * s.kvRowFloats(), 1);
                float[] q = TestSeeds.floats(r, n * s.queryRowFloats(), 2);
                float[] out = new float[n * s.queryRowFloats()];
                for (KvCache c : caches) {
                    c.append(l, k, 0, v, 0, n);
                    c.attend(l, q, 0, n, out, 0);
                }
            }
            done += n;
        }
    }

    /** The bound of BudgetPropertyTest in eviction-policies: the declared bound plus {@code 3(g − 1)}. */
    private static void check(EvictionPolicy policy, KvCache cache, int decoded, int g, String where) {
        if (!(policy instanceof BudgetedPolicy budgeted)) {
            return;
        }
        ModelShape s = cache.shape();
        io.kvcache4j.api.Budget c = budgeted.budget();
        for (int l = 0; l < s.layers(); l++) {
            int next = cache.nextPosition(l);
            for (int h = 0; h < s.kvHeads(); h++) {
                long bound = budgeted.maxRetainedTokens(s, l, h, decoded) + 3L * (g - 1);
                if (g > 1 && policy instanceof PyramidInferPolicy) {
                    bound = budgeted.budgetTokens(s, l, h) + decoded + 3L * (g - 1);
                }
                int held = cache.retainedTokens(l, h);
                assertTrue(held <= bound, where + ": layer " + l + " head " + h + " holds " + held + " > " + bound);
                HeadView view = cache.view(l, h);
                TreeSet<Integer> positions = new TreeSet<>();
                for (int i = 0; i < view.count(); i++) {
                    positions.add(view.position(i));
                }
                assertEquals(held, positions.size(), where + ": duplicate positions");
                for (int p = 0; p < Math.min(c.sinkTokens(), next); p++) {
                    assertTrue(positions.contains(p), where + ": sink " + p + " evicted at layer " + l + " head " + h);
                }
                for (int p = Math.max(0, next - c.recentTokens()); p < next; p++) {
                    assertTrue(
                            positions.contains(p), where + ": recent " + p + " evicted at layer " + l + " head " + h);
                }
            }
        }
    }
}
