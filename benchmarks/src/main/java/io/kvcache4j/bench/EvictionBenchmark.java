package io.kvcache4j.bench;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What eviction costs per decode step, beside the attention of the same step. Shape: 1 layer, 8
 * query heads, 2 KV heads, headDim 128, f16 storage, budget {@code budgetTokens} (2K) per KV head.
 *
 * <ul>
 *   <li>{@link #decodeStep}: one decode step (append one token, attend one query) on a cache run by
 *       the policy: attention over the tokens the policy holds, plus its bookkeeping (scores,
 *       signatures, victim choice, evictions).
 *   <li>{@link #attentionOnly}: the attention work of the same step over exactly {@code tokens} (2K)
 *       stored tokens, what the {@code full} policy does at that size, with no policy at all.
 * </ul>
 *
 * Bookkeeping per step ≈ {@code decodeStep − attentionOnly} from the same run.
 *
 * <ul>
 *   <li>{@link #interleaved}: a run of {@code attentionOnly} steps and a run of {@code decodeStep}
 *       steps per call, each run timed into its own counter ({@code attentionNs}, {@code decodeNs}, totals per
 *       iteration). On a shared machine whose speed drifts over seconds, two benchmarks run a minute
 *       apart can differ by more than the bookkeeping itself; steps taken alternately see the same
 *       drift, so {@code decodeNs / attentionNs} of one iteration is the step's cost relative to its
 *       attention with the drift cancelled; {@code bin/kvcache4j bench} prints it per policy.
 * </ul>
 *
 * <p>Attention alone fills each head's store alone, the cache its heads in turn; both stores keep a
 * head's pages at consecutive addresses whatever the order ({@link PageLayoutBenchmark}), so the
 * difference is the step's bookkeeping and not where its pages lie.
 *
 * <p><b>State.</b> Per-step and lagged policies ({@code streaming}, {@code h2o}, {@code hashevict},
 * {@code lazy}) stream {@code contextTokens} (32K) tokens through the cache once per trial, in chunks
 * of 64, so each head holds about the budget at position 32K (about 30 s of setup). One-shot policies
 * ({@code snapkv}, {@code h2o-prefill}, {@code pyramidinfer}) would need a full quadratic prefill of
 * 32K tokens (minutes on a CPU), and by design keep every decode token afterwards; they get a fresh
 * cache every iteration from a prompt of {@code budgetTokens + 256} tokens compressed by {@code
 * endPrefill}, and short iterations (200 ms) keep their growth during an iteration small.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 5, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Measurement(iterations = 10, time = 200, timeUnit = TimeUnit.MILLISECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class EvictionBenchmark {
    static final ModelShape SHAPE = new ModelShape(1, 8, 2, 128);
    static final int POOL = 64;
    static final Set<String> ONE_SHOT = Set.of("snapkv", "h2o-prefill", "pyramidinfer");

    /** A cache run by one policy, filled as described in the class comment. */
    @State(Scope.Thread)
    public static class PolicyState {
        @Param({"streaming", "h2o", "hashevict", "lazy", "snapkv", "h2o-prefill", "pyramidinfer"})
        public String policy;

        @Param({"32768"})
        public int contextTokens;

        @Param({"2048"})
        public int budgetTokens;

        KvCache cache;
        float[] keys;
        float[] values;
        float[] queries;
        float[] out;
        int cursor;

        @Setup(Level.Trial)
        public void setupTrial() {
            SplittableRandom r = new SplittableRandom(42);
            keys = gaussian(r, POOL * SHAPE.kvRowFloats());
            values = gaussian(r, POOL * SHAPE.kvRowFloats());
            queries = gaussian(r, POOL * SHAPE.queryRowFloats());
            out = new float[POOL * SHAPE.queryRowFloats()];
            if (!ONE_SHOT.contains(policy)) {
                cache = newCache();
                feed(contextTokens);
                cache.endPrefill();
            }
        }

        @Setup(Level.Iteration)
        public void setupIteration() {
            if (ONE_SHOT.contains(policy)) {
                if (cache != null) {
                    cache.close();
                }
                cache = newCache();
                feed(budgetTokens + 256);
                cache.endPrefill();
            }
        }

        private KvCache newCache() {
            return KvCache.builder(SHAPE)
                    .dtype(KvDType.F16)
                    .policy(EvictionPolicies.create(policy, Budget.tokens(budgetTokens)))
                    .build();
        }

        /** Appends and attends {@code tokens} tokens in chunks of {@link #POOL}. */
        void feed(int tokens) {
            for (int done = 0; done < tokens; done += POOL) {
                int n = Math.min(POOL, tokens - done);
                cache.append(0, keys, 0, values, 0, n);
                cache.attend(0, queries, 0, n, out, 0);
            }
        }

        /** One decode step: append one token, attend one query. */
        float step() {
            int i = cursor++ & (POOL - 1);
            cache.append(0, keys, i * SHAPE.kvRowFloats(), values, i * SHAPE.kvRowFloats(), 1);
            cache.attend(0, queries, i * SHAPE.queryRowFloats(), 1, out, 0);
            return out[0];
        }

        /** Tokens the first KV head holds now. */
        int heldTokens() {
            return cache.retainedTokens(0, 0);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            if (cache != null) {
                cache.close();
                cache = null;
            }
        }
    }

    /** The attention of one decode step over exactly {@code attendTokens} stored tokens, no policy. */
    @State(Scope.Thread)
    public static class AttentionState {
        @Param({"2048"})
        public int attendTokens;

        /** Steps of each kind in a run of {@link EvictionBenchmark#interleaved}. */
        @Param({"32"})
        public int runSteps;

        PagedHeadStore[] stores;
        GroupAttention state;
        float[] queries;
        float[] out;
        float scale;
        final SlotSelection prefix = new SlotSelection();

        @Setup(Level.Trial)
        public void setup() {
            SplittableRandom r = new SplittableRandom(7);
            int d = SHAPE.headDim();
            stores = new PagedHeadStore[SHAPE.kvHeads()];
            float[] row = new float[d];
            for (int h = 0; h < stores.length; h++) {
                stores[h] = new PagedHeadStore(KvDType.F16, d, 16, AttentionKernels.get());
                for (int t = 0; t < attendTokens; t++) {
                    for (int i = 0; i < d; i++) {
                        row[i] = (float) r.nextGaussian();
                    }
                    stores[h].append(row, 0, row, 0, 0, 1);
                }
            }
            state = new GroupAttention(SHAPE.groupSize(), d);
            queries = gaussian(r, SHAPE.queryRowFloats());
            out = new float[SHAPE.queryRowFloats()];
            scale = (float) (1 / Math.sqrt(d));
        }

        float step() {
            int groupFloats = SHAPE.groupSize() * SHAPE.headDim();
            for (int h = 0; h < stores.length; h++) {
                state.begin(queries, h * groupFloats, scale);
                stores[h].attend(state, prefix.prefix(attendTokens));
                state.finish(out, h * groupFloats);
            }
            return out[0] + out[out.length - 1];
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            for (PagedHeadStore s : stores) {
                s.close();
            }
        }
    }

    /** Nanoseconds of each half of {@link #interleaved}, summed over an iteration. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class StepTimes {
        public long attentionNs;
        public long decodeNs;

        @Setup(Level.Iteration)
        public void reset() {
            attentionNs = 0;
            decodeNs = 0;
        }
    }

    /**
     * {@code runSteps} attention-alone steps, then as many decode steps, each run timed into its
     * counter. Runs of steps rather than single steps: each run starts by fetching its working set
     * (2 MB of keys and values) back from the last-level cache, a cost neither kind of step has when
     * it runs alone and both pay alike here; {@code -p runSteps=256} spreads it thinner.
     */
    @Benchmark
    public float interleaved(AttentionState a, PolicyState p, StepTimes t) {
        float x = 0;
        long t0 = System.nanoTime();
        for (int i = 0; i < a.runSteps; i++) {
            x += a.step();
        }
        long t1 = System.nanoTime();
        for (int i = 0; i < a.runSteps; i++) {
            x += p.step();
        }
        long t2 = System.nanoTime();
        t.attentionNs += t1 - t0;
        t.decodeNs += t2 - t1;
        return x;
    }

    @Benchmark
    public float decodeStep(PolicyState s) {
        return s.step();
    }

    @Benchmark
    public float attentionOnly(AttentionState s) {
        return s.step();
    }

    static float[] gaussian(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }
}
