package io.kvcache4j.bench;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
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
 * What the one-thread guard costs a decode step. {@code decodeStep} is one layer's decode step through
 * the public API (append one token, attend it; headDim 128, GQA group 4, f16) over a window of {@code
 * tokens} tokens kept constant by dropping the oldest token (one O(1) swap per step); it enters and
 * leaves the guard twice. {@code guardedCall} is the cheapest guarded call ({@code pendingTokens}):
 * one enter, one leave, a field read. The guard's share of a step is {@code 2 × guardedCall /
 * decodeStep}, both from the same run.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class CacheCallBenchmark {
    static final ModelShape SHAPE = new ModelShape(1, 4, 1, 128);

    @Param({"256", "4096"})
    public int tokens;

    KvCache cache;
    float[] k;
    float[] q;
    float[] out;

    /** Keeps the newest {@code window} tokens: the oldest slot leaves after each attend call. */
    record Window(int window) implements EvictionPolicy {
        @Override
        public String name() {
            return "window";
        }

        @Override
        public EvictionTracker bind(CacheAccess access) {
            HeadSlots head = access.head(0, 0);
            return new EvictionTracker() {
                @Override
                public ScoreAggregation scoreAggregation() {
                    return null;
                }

                @Override
                public void afterAttention(int layer, int lastQueryPosition) {
                    while (head.count() > window) {
                        head.evict(0);
                    }
                }
            };
        }
    }

    @Setup
    public void setup() {
        SplittableRandom r = new SplittableRandom(3);
        cache = KvCache.builder(SHAPE).policy(new Window(tokens)).build();
        float[] prompt = AttentionBenchmark.randomFloats(r, tokens * SHAPE.kvRowFloats());
        float[] pq = AttentionBenchmark.randomFloats(r, tokens * SHAPE.queryRowFloats());
        cache.append(0, prompt, 0, prompt, 0, tokens);
        cache.attend(0, pq, 0, tokens, new float[pq.length], 0);
        k = AttentionBenchmark.randomFloats(r, SHAPE.kvRowFloats());
        q = AttentionBenchmark.randomFloats(r, SHAPE.queryRowFloats());
        out = new float[SHAPE.queryRowFloats()];
    }

    @Benchmark
    public float decodeStep() {
        cache.append(0, k, 0, k, 0, 1);
        cache.attend(0, q, 0, 1, out, 0);
        return out[0];
    }

    @Benchmark
    public int guardedCall() {
        return cache.pendingTokens(0);
    }

    @TearDown
    public void tearDown() {
        cache.close();
    }
}
