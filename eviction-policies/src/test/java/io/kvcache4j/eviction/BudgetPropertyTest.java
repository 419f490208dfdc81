package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.store.NativeMemory;
import java.util.SplittableRandom;
import java.util.TreeSet;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * For every policy, over random shapes, configurations and token streams: after every attend call
 * past the prompt, each head holds at most what the policy declares ({@link
 * BudgetedPolicy#maxRetainedTokens}), the sinks and the recent window are still there, and the cache
 * holds fewer bytes than the full cache fed the same stream whenever the prompt exceeds the budget
 * (no policy is a silent no-op). Evicted
 * pages are freed: the process's live off-heap bytes follow {@code bytesHeld}.
 */
class BudgetPropertyTest {

    @ParameterizedTest
    @ValueSource(strings = {"streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer"})
    void heldTokensStayWithinTheDeclaredBound(String name) {
        long seed = TestSeeds.seed("budget-" + name);
        SplittableRandom r = TestSeeds.random(seed);
        int scenarios = 12;
        int compressedBelowFull = 0;
        for (int sc = 0; sc < scenarios; sc++) {
            String where = name + " scenario " + sc + " seed=" + seed;
            int kvHeads = 1 + r.nextInt(2);
            ModelShape shape =
                    new ModelShape(1 + r.nextInt(3), kvHeads * (1 + r.nextInt(3)), kvHeads, 8 * (1 + r.nextInt(3)));
            int sinks = r.nextInt(7);
            int recent = 1 + r.nextInt(12);
            int snapWindow = 1 + r.nextInt(16);
            int fixed = sinks + (name.equals("snapkv") ? Math.max(recent, snapWindow) : recent);
            PolicyConfig config = PolicyConfig.builder()
                    .budgetTokens(fixed + 1 + r.nextInt(40))
                    .sinkTokens(sinks)
                    .recentTokens(recent)
                    .snapKvWindow(snapWindow)
                    .snapKvKernel(1 + 2 * r.nextInt(4))
                    .snapKvPooling(r.nextBoolean() ? PolicyConfig.Pooling.MAX : PolicyConfig.Pooling.AVG)
                    .hashBits(1 + r.nextInt(64))
                    .hashScoring(PolicyConfig.HashScoring.values()[r.nextInt(3)])
                    .lazyWindow(1 + r.nextInt(16))
                    .pyramidCompressEvery(2 + r.nextInt(15))
                    .build();
            BudgetedPolicy policy = (BudgetedPolicy) EvictionPolicies.create(name, config);
            // Even scenarios: a prompt longer than the budget, so every policy must evict. Odd: any length.
            boolean mustEvict = sc % 2 == 0;
            int prompt = mustEvict ? config.budgetTokens() + 64 + r.nextInt(150) : 1 + r.nextInt(200);
            int chunk = 1 + r.nextInt(64);
            int decode = 50 + r.nextInt(200);
            int pageTokens = 16 * (1 + r.nextInt(2));
            long liveBefore = NativeMemory.liveBytes();
            try (KvCache cache = KvCache.builder(shape)
                            .policy(policy)
                            .pageTokens(pageTokens)
                            .build();
                    KvCache full = KvCache.builder(shape).pageTokens(pageTokens).build()) {
                SplittableRandom stream = TestSeeds.random(r.nextLong());
                feed(stream, prompt, chunk, cache, full);
                cache.endPrefill();
                full.endPrefill();
                check(policy, cache, 0, where + " after endPrefill (prompt " + prompt + ")");
                for (int t = 1; t <= decode; t++) {
                    feed(stream, 1, 1, cache, full);
                    check(policy, cache, t, where + " after decode step " + t);
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
                assertTrue(
                        NativeMemory.liveBytes() - liveBefore == cache.bytesHeld() + full.bytesHeld(),
                        where + ": live off-heap bytes do not match bytesHeld");
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

    private static void check(BudgetedPolicy policy, KvCache cache, int decoded, String where) {
        ModelShape s = cache.shape();
        PolicyConfig c = policy.config();
        for (int l = 0; l < s.layers(); l++) {
            int next = cache.nextPosition(l);
            for (int h = 0; h < s.kvHeads(); h++) {
                long bound = policy.maxRetainedTokens(s, l, h, decoded);
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
