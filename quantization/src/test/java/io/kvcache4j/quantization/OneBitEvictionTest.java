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
 * Every installed eviction policy on the 1-bit store and on the rotated 1-bit store (granularity
 * {@code g = 16}), through {@link KvCache}, with decode steps as in eviction-policies' budget
 * property test: each head holds at most the policy's declared bound plus {@code 3(g − 1)}, sinks
 * and the recent window stay, the cache holds fewer bytes than a full cache of the same storage once
 * the prompt exceeds the budget, live native bytes follow {@code bytesHeld}, and closing frees
 * everything.
 */
class OneBitEvictionTest {
    private static final int GROUP = 16;

    static Stream<Arguments> policiesAndStorage() {
        return EvictionPolicies.names().stream()
                .flatMap(name -> Stream.of(Arguments.of(name, "1bit"), Arguments.of(name, "1bit-quantile+rht")));
    }

    private static HeadStoreFactory storage(String kind, long seed) {
        return switch (kind) {
            case "1bit" -> OneBitConfig.group(GROUP, 0.5f, 0.3f).factory();
            case "1bit-quantile+rht" ->
                HadamardRotation.wrap(OneBitConfig.quantile(GROUP, 0.2f, 0.8f).factory(), seed);
            default -> throw new IllegalArgumentException(kind);
        };
    }

    @ParameterizedTest
    @MethodSource("policiesAndStorage")
    void everyPolicyStaysWithinItsBoundAndFreesMemory(String name, String storageKind) {
        long seed = TestSeeds.seed("onebit-eviction-" + name + "-" + storageKind);
        SplittableRandom r = TestSeeds.random(seed);
        long liveBefore = NativeMemory.liveBytes();
        for (int sc = 0; sc < 3; sc++) {
            String where = name + " on " + storageKind + " scenario " + sc + " seed=" + seed;
            int kvHeads = 1 + r.nextInt(2);
            ModelShape shape =
                    new ModelShape(1 + r.nextInt(2), kvHeads * (1 + r.nextInt(3)), kvHeads, 8 << r.nextInt(3));
            int budget = 40 + r.nextInt(60);
            EvictionPolicy policy = EvictionPolicies.create(name, Budget.tokens(budget));
            int prompt = budget + 3 * GROUP + 32 + r.nextInt(150);
            int chunk = 1 + r.nextInt(64);
            int decode = 40 + r.nextInt(60);
            HeadStoreFactory store = storage(storageKind, r.nextLong());
            try (KvCache cache =
                            KvCache.builder(shape).policy(policy).store(store).build();
                    KvCache full = KvCache.builder(shape).store(store).build()) {
                SplittableRandom stream = TestSeeds.random(r.nextLong());
                feed(stream, prompt, chunk, cache, full);
                cache.endPrefill();
                full.endPrefill();
                check(policy, cache, 0, where + " after endPrefill (prompt " + prompt + ")");
                for (int t = 1; t <= decode; t++) {
                    feed(stream, 1, 1, cache, full);
                    check(policy, cache, t, where + " after decode step " + t);
                }
                if (name.equals("full")) {
                    assertEquals(full.bytesHeld(), cache.bytesHeld(), where);
                } else {
                    assertTrue(
                            cache.bytesHeld() < full.bytesHeld(),
                            where + ": holds " + cache.bytesHeld() + " bytes, full " + full.bytesHeld());
                }
                assertEquals(
                        cache.bytesHeld() + full.bytesHeld(),
                        NativeMemory.liveBytes() - liveBefore,
                        where + ": live native bytes do not match bytesHeld");
                checkReads(cache, where);
            }
            assertEquals(liveBefore, NativeMemory.liveBytes(), where + ": closing freed everything");
        }
    }

    private static void feed(SplittableRandom r, int tokens, int chunk, KvCache a, KvCache b) {
        ModelShape s = a.shape();
        int done = 0;
        while (done < tokens) {
            int n = Math.min(chunk, tokens - done);
            for (int l = 0; l < s.layers(); l++) {
                float[] k = TestSeeds.floats(r, n * s.kvRowFloats(), 1);
                float[] v = TestSeeds.floats(r, n * s.kvRowFloats(), 1);
                float[] q = TestSeeds.floats(r, n * s.queryRowFloats(), 2);
                float[] out = new float[n * s.queryRowFloats()];
                a.append(l, k, 0, v, 0, n);
                a.attend(l, q, 0, n, out, 0);
                for (float x : out) {
                    assertTrue(Float.isFinite(x), "finite attention output");
                }
                b.append(l, k, 0, v, 0, n);
                b.attend(l, q, 0, n, out, 0);
            }
            done += n;
        }
    }

    /** The declared bound plus {@code 3(g − 1)}, as in eviction-policies' budget property test. */
    private static void check(EvictionPolicy policy, KvCache cache, int decoded, String where) {
        ModelShape s = cache.shape();
        for (int l = 0; l < s.layers(); l++) {
            int next = cache.nextPosition(l);
            for (int h = 0; h < s.kvHeads(); h++) {
                int held = cache.retainedTokens(l, h);
                TreeSet<Integer> positions = positions(cache.view(l, h));
                assertEquals(held, positions.size(), where + ": duplicate positions");
                if (!(policy instanceof BudgetedPolicy budgeted)) {
                    assertEquals(next, held, where + ": full keeps everything");
                    continue;
                }
                long bound = budgeted.maxRetainedTokens(s, l, h, decoded) + 3L * (GROUP - 1);
                if (policy instanceof PyramidInferPolicy) {
                    bound = budgeted.budgetTokens(s, l, h) + decoded + 3L * (GROUP - 1);
                }
                assertTrue(held <= bound, where + ": layer " + l + " head " + h + " holds " + held + " > " + bound);
                io.kvcache4j.api.Budget c = budgeted.budget();
                for (int p = 0; p < Math.min(c.sinkTokens(), next); p++) {
                    assertTrue(positions.contains(p), where + ": sink " + p + " evicted at layer " + l + " head " + h);
                }
                for (int p = Math.max(0, next - c.recentTokens()); p < next; p++) {
                    assertTrue(positions.contains(p), where + ": recent position " + p + " evicted");
                }
            }
        }
    }

    private static TreeSet<Integer> positions(HeadView view) {
        TreeSet<Integer> set = new TreeSet<>();
        for (int s = 0; s < view.count(); s++) {
            set.add(view.position(s));
        }
        return set;
    }

    /** Every held row reads back finite (dequantized, rotated back). */
    private static void checkReads(KvCache cache, String where) {
        ModelShape s = cache.shape();
        float[] row = new float[s.headDim()];
        HeadView view = cache.view(0, 0);
        for (int slot = 0; slot < view.count(); slot++) {
            view.readKey(slot, row, 0);
            for (float x : row) {
                assertTrue(Float.isFinite(x), where + ": key of slot " + slot);
            }
        }
    }
}
