package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.api.ModelShape;
import java.lang.management.ManagementFactory;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;

/**
 * Decode-step bookkeeping allocates nothing: after a warm-up, a decode step (append, attend, the
 * policy's callbacks and evictions) allocates only what each page the store opens costs on the heap
 * (its segment handle and its live-block record in {@code NativeMemory}, at most 192 bytes, counted
 * per page). The stream keeps the held counts between powers of two, where
 * the cache's own amortised buffers (score scratch, page table) do not grow.
 */
class AllocationTest {
    static final ModelShape SHAPE = new ModelShape(2, 4, 2, 32);
    static final int PAGE = KvCacheBuilder.DEFAULT_PAGE_TOKENS;
    static final long BYTES_PER_PAGE = 192;

    /**
     * The Vector API kernels allocate until C2 has compiled them, and the attention pass with and
     * without the score record (logits, softmax mass) compiles late on a busy machine, each profile
     * deoptimising the other's code at first; so does HashEvict's Hamming step, a Vector API kernel
     * of its own. Drive a bounded H2O cache (scores), a StreamingLLM cache (no scores) and a
     * HashEvict cache in turn until 200 steps of each in a row allocate nothing, so that what the
     * tests below measure is the policies' steady state.
     */
    @BeforeAll
    static void compileTheAttentionAndScorePaths() {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long tid = Thread.currentThread().threadId();
        SplittableRandom r = new SplittableRandom(42);
        Budget budget = Budget.tokens(100, 4, 32);
        float[] k = new float[SHAPE.kvRowFloats()];
        float[] v = new float[SHAPE.kvRowFloats()];
        float[] q = new float[SHAPE.queryRowFloats()];
        float[] out = new float[SHAPE.queryRowFloats()];
        try (KvCache scores = KvCache.builder(SHAPE)
                        .policy(new H2OPolicy(H2OPolicy.Config.defaults(budget)))
                        .build();
                KvCache plain = KvCache.builder(SHAPE)
                        .policy(new StreamingLlmPolicy(StreamingLlmPolicy.Config.defaults(budget)))
                        .build();
                KvCache hashed = KvCache.builder(SHAPE)
                        .policy(new HashEvictPolicy(HashEvictPolicy.Config.defaults(budget)))
                        .build()) {
            Streams.prefill(scores, r, 200, 64);
            Streams.prefill(plain, r, 200, 64);
            Streams.prefill(hashed, r, 200, 64);
            int steps = 0;
            long allocated = Long.MAX_VALUE;
            while (allocated > 0 && steps < 100_000) {
                long before = threads.getThreadAllocatedBytes(tid);
                for (int t = 0; t < 200; t++) {
                    Streams.step(scores, r, k, v, q, out);
                    Streams.step(plain, r, k, v, q, out);
                    Streams.step(hashed, r, k, v, q, out);
                }
                allocated = threads.getThreadAllocatedBytes(tid) - before;
                steps += 200;
            }
            System.out.println("[alloc] warm-up: " + steps + " decode steps of each of h2o, streaming and hashevict"
                    + " until 200 in a row allocated nothing (" + allocated + " bytes in the last 200)");
        }
    }

    /**
     * Every policy at a budget that is not a multiple of the page size (100) and at two that are (96,
     * 128): there a decode-time policy's head crosses a page boundary every step, which must not
     * allocate (the store keeps a spare page).
     */
    static java.util.stream.Stream<org.junit.jupiter.params.provider.Arguments> policiesAndBudgets() {
        return java.util.stream.Stream.of(
                        "streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer")
                .flatMap(name -> java.util.stream.Stream.of(100, 96, 128)
                        .map(b -> org.junit.jupiter.params.provider.Arguments.of(name, b)));
    }

    @ParameterizedTest
    @org.junit.jupiter.params.provider.MethodSource("policiesAndBudgets")
    void decodeStepsAllocateOnlyPageHandles(String name, int budget) {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long seed = TestSeeds.seed("alloc-" + name + "-" + budget);
        SplittableRandom r = TestSeeds.random(seed);
        // Every parameter at its default (lazy's window is 32).
        Budget tokens = Budget.tokens(budget, 4, 32);
        float[] k = new float[SHAPE.kvRowFloats()];
        float[] v = new float[SHAPE.kvRowFloats()];
        float[] q = new float[SHAPE.queryRowFloats()];
        float[] out = new float[SHAPE.queryRowFloats()];
        try (KvCache cache = KvCache.builder(SHAPE)
                .policy(EvictionPolicies.create(name, tokens))
                .build()) {
            Streams.prefill(cache, r, 300, 64);
            cache.endPrefill();
            for (int t = 0; t < 1000; t++) {
                Streams.step(cache, r, k, v, q, out);
            }
            long tid = Thread.currentThread().threadId();
            long best = Long.MAX_VALUE;
            long bestRaw = Long.MAX_VALUE;
            StringBuilder rounds = new StringBuilder();
            // Best of up to ROUNDS rounds, stopping at the first clean one: a round measured while C2
            // was still compiling a path allocates, and a later round of a policy that keeps its decode
            // tokens may cross a power of two (where the cache's amortised buffers grow) and allocate
            // for that reason; one round without either is what the test asks for.
            for (int round = 0; round < ROUNDS; round++) {
                long pages = 0;
                long before = threads.getThreadAllocatedBytes(tid);
                for (int t = 0; t < 300; t++) {
                    TestSeeds.fill(r, k, 0, k.length, 1);
                    TestSeeds.fill(r, v, 0, v.length, 1);
                    TestSeeds.fill(r, q, 0, q.length, 1);
                    for (int l = 0; l < SHAPE.layers(); l++) {
                        for (int h = 0; h < SHAPE.kvHeads(); h++) {
                            if (cache.retainedTokens(l, h) % PAGE == 0) {
                                pages++;
                            }
                        }
                        cache.append(l, k, 0, v, 0, 1);
                        cache.attend(l, q, 0, 1, out, 0);
                    }
                }
                long raw = threads.getThreadAllocatedBytes(tid) - before;
                long excess = raw - pages * BYTES_PER_PAGE;
                rounds.append(" ").append(excess).append(" (").append(pages).append(" pages)");
                best = Math.min(best, excess);
                bestRaw = Math.min(bestRaw, raw);
                if (best <= 0 && (!PER_STEP.contains(name) || bestRaw == 0)) {
                    break;
                }
            }
            System.out.println("[alloc] " + name + " budget " + budget
                    + ": bytes beyond page handles per 300 decode steps:" + rounds);
            assertTrue(
                    best <= 0,
                    name + " at budget " + budget + " allocated " + best
                            + " bytes beyond page handles in its best round" + " of 300 decode steps:" + rounds
                            + ", seed=" + seed);
            if (PER_STEP.contains(name)) {
                // A head at its budget appends one token and drops one each step: even where that crosses
                // a page boundary every step, the spare page means nothing at all is allocated.
                assertEquals(0, bestRaw, name + " at budget " + budget + " allocated per step, seed=" + seed);
            }
        }
    }

    /** Measured rounds of 300 decode steps at most. */
    static final int ROUNDS = 6;

    /** Policies that evict one token per step, so a head stays at its budget. */
    static final java.util.Set<String> PER_STEP = java.util.Set.of("streaming", "h2o", "hashevict");
}
