package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.NativeMemory;
import io.kvcache4j.testing.OnHeapStore;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * For every policy, over random shapes, configurations and token streams: after every attend call
 * past the prompt, each head holds at most what the policy declares ({@link
 * BudgetedPolicy#maxRetainedTokens}), the sinks and the recent window are still there, and the cache
 * holds fewer bytes than the full cache fed the same stream whenever the prompt exceeds the budget
 * (no policy is a silent no-op). Evicted
 * pages are freed: the process's live off-heap bytes follow {@code bytesHeld}.
 */
class BudgetPropertyTest {

    static Stream<Arguments> policiesAndStorage() {
        return Stream.of("streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer")
                .flatMap(name -> Stream.of(
                        Arguments.of(name, "exact"),
                        Arguments.of(name, "onheap-g1-layer"),
                        Arguments.of(name, "onheap-g4")));
    }

    /**
     * The storage under test: kv-api's exact pages; a store written outside kv-api with its own
     * layer-level source; and a codec-shaped store that only drops whole groups of 4 tokens.
     */
    private static HeadStoreFactory storage(String kind, int pageTokens) {
        return switch (kind) {
            case "exact" -> HeadStoreFactory.exact(KvDType.F16, pageTokens);
            case "onheap-g1-layer" -> OnHeapStore.factory(1, true);
            case "onheap-g4" -> OnHeapStore.factory(4, false);
            default -> throw new IllegalArgumentException(kind);
        };
    }

    @ParameterizedTest
    @MethodSource("policiesAndStorage")
    void heldTokensStayWithinTheDeclaredBound(String name, String storageKind) {
        long seed = TestSeeds.seed("budget-" + name + "-" + storageKind);
        SplittableRandom r = TestSeeds.random(seed);
        int scenarios = 12;
        int compressedBelowFull = 0;
        for (int sc = 0; sc < scenarios; sc++) {
            String where = name + " on " + storageKind + " scenario " + sc + " seed=" + seed;
            int kvHeads = 1 + r.nextInt(2);
            ModelShape shape =
                    new ModelShape(1 + r.nextInt(3), kvHeads * (1 + r.nextInt(3)), kvHeads, 8 * (1 + r.nextInt(3)));
            int sinks = r.nextInt(7);
            int recent = 1 + r.nextInt(12);
            int snapWindow = 1 + r.nextInt(16);
            int fixed = sinks + (name.equals("snapkv") ? Math.max(recent, snapWindow) : recent);
            Budget budget = Budget.tokens(fixed + 1 + r.nextInt(40), sinks, recent);
            int snapKernel = 1 + 2 * r.nextInt(4);
            SnapKvPolicy.Pooling pooling = r.nextBoolean() ? SnapKvPolicy.Pooling.MAX : SnapKvPolicy.Pooling.AVG;
            int hashBits = 1 + r.nextInt(64);
            HashEvictPolicy.HashScoring scoring = HashEvictPolicy.HashScoring.values()[r.nextInt(3)];
            int lazyWindow = 1 + r.nextInt(16);
            int compressEvery = 2 + r.nextInt(15);
            BudgetedPolicy policy = switch (name) {
                case "streaming" -> new StreamingLlmPolicy(StreamingLlmPolicy.Config.defaults(budget));
                case "h2o" -> new H2OPolicy(H2OPolicy.Config.defaults(budget));
                case "h2o-prefill" -> new H2OPrefillPolicy(H2OPrefillPolicy.Config.defaults(budget));
                case "snapkv" -> new SnapKvPolicy(new SnapKvPolicy.Config(budget, snapWindow, snapKernel, pooling));
                case "hashevict" ->
                    new HashEvictPolicy(HashEvictPolicy.Config.defaults(budget)
                            .withBits(hashBits)
                            .withScoring(scoring));
                case "lazy" ->
                    new LazyEvictionPolicy(
                            LazyEvictionPolicy.Config.defaults(budget).withWindow(lazyWindow));
                case "pyramidinfer" ->
                    new PyramidInferPolicy(
                            PyramidInferPolicy.Config.defaults(budget).withCompressEvery(compressEvery));
                default -> throw new IllegalArgumentException("no configuration for policy " + name);
            };
            // Even scenarios: a prompt longer than the budget, so every policy must evict. Odd: any length.
            boolean mustEvict = sc % 2 == 0;
            int prompt = mustEvict ? budget.tokens() + 64 + r.nextInt(150) : 1 + r.nextInt(200);
            int chunk = 1 + r.nextInt(64);
            int decode = 50 + r.nextInt(200);
            int pageTokens = 16 * (1 + r.nextInt(2));
            long liveBefore = NativeMemory.liveBytes();
            HeadStoreFactory store = storage(storageKind, pageTokens);
            int granularity = storageKind.equals("onheap-g4") ? 4 : 1;
            try (KvCache cache =
                            KvCache.builder(shape).policy(policy).store(store).build();
                    KvCache full = KvCache.builder(shape).store(store).build()) {
                SplittableRandom stream = TestSeeds.random(r.nextLong());
                feed(stream, prompt, chunk, cache, full);
                cache.endPrefill();
                full.endPrefill();
                check(policy, cache, 0, granularity, where + " after endPrefill (prompt " + prompt + ")");
                for (int t = 1; t <= decode; t++) {
                    feed(stream, 1, 1, cache, full);
                    check(policy, cache, t, granularity, where + " after decode step " + t);
                }
                assertTrue(
                        cache.bytesHeld() <= full.bytesHeld(),
                        where + ": " + cache.bytesHeld() + " > full " + full.bytesHeld());
                if (mustEvict) {
                    assertTrue(
                            cache.bytesHeld() < full.bytesHeld(),
                            where + ": holds as many bytes as full (" + full.bytesHeld() + ")");
                }
                if (cache.bytesHeld() < full.bytesHeld()) {
                    compressedBelowFull++;
                }
                if (storageKind.equals("exact")) {
                    assertTrue(
                            NativeMemory.liveBytes() - liveBefore == cache.bytesHeld() + full.bytesHeld(),
                            where + ": live off-heap bytes do not match bytesHeld");
                }
            }
        }
        System.out.println("[budget] " + name + ": compressed cache held fewer bytes than full in "
                + compressedBelowFull + "/" + scenarios + " scenarios");
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
                b.append(l, k, 0, v, 0, n);
                b.attend(l, q, 0, n, out, 0);
            }
            done += n;
        }
    }

    /**
     * The declared bound, plus {@code 3(g − 1)} tokens on a store of granularity {@code g}: eviction
     * removes whole groups, so less than a group is left over, and the groups that straddle the edge
     * of the sinks and of the recent window cannot leave. PyramidInfer's generation stage evicts only
     * groups inside each block, so on such a store a block may stay whole.
     */
    private static void check(BudgetedPolicy policy, KvCache cache, int decoded, int g, String where) {
        ModelShape s = cache.shape();
        Budget c = policy.budget();
        for (int l = 0; l < s.layers(); l++) {
            int next = cache.nextPosition(l);
            for (int h = 0; h < s.kvHeads(); h++) {
                long bound = policy.maxRetainedTokens(s, l, h, decoded) + 3L * (g - 1);
                if (g > 1 && policy instanceof PyramidInferPolicy) {
                    bound = policy.budgetTokens(s, l, h) + decoded + 3L * (g - 1);
                }
                int held = cache.retainedTokens(l, h);
                assertTrue(held <= bound, where + ": layer " + l + " head " + h + " holds " + held + " > " + bound);
                TreeSet<Integer> positions = Streams.positions(cache, l, h);
                assertTrue(positions.size() == held, where + ": duplicate positions");
                for (int p = 0; p < Math.min(c.sinkTokens(), next); p++) {
                    assertTrue(positions.contains(p), where + ": sink " + p + " evicted at layer " + l + " head " + h);
                }
                for (int p = Math.max(0, next - c.recentTokens()); p < next; p++) {
                    assertTrue(
                            positions.contains(p),
                            where + ": recent position " + p + " evicted at layer " + l + " head " + h);
                }
            }
        }
    }
}
