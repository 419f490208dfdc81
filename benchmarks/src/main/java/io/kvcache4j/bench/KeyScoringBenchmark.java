package io.kvcache4j.bench;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.KeyScoring;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
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
 * Key scoring alone: the logits {@code q·K̂ᵀ} of every stored token for a GQA group of 4 query heads,
 * headDim 128, one thread, through {@link KeyScoring} on each store's own encoding (the exact f16
 * pages with the attention kernel's scores, the codecs on their packed codes, 1-bit by the bit
 * trick through per-quad tables; {@code 1bit-g128} with groups of 128 tokens), the stores built as
 * in {@link AttentionBenchmark}. What a retrieval selector pays per step
 * to rank a store's keys; compare each {@code dtype} with {@code f16} of the same run. The logits
 * ({@code 4 × tokens} floats) are written once per op for every dtype alike.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class KeyScoringBenchmark {
    static final int HEAD_DIM = AttentionBenchmark.HEAD_DIM;
    static final int GROUP = AttentionBenchmark.GROUP;

    @Param({"65536", "1048576"})
    public int tokens;

    @Param({"f16", "int8", "int4", "int2", "1bit", "1bit-g128"})
    public String dtype;

    @Param({"vector"})
    public String impl;

    HeadStore store;
    KeyScoring scoring;
    GroupAttention state;
    float[] logits;

    @Setup(Level.Trial)
    public void setup() {
        AttentionKernel kernel = AttentionBenchmark.kernel(impl);
        ModelShape shape = new ModelShape(1, GROUP, 1, HEAD_DIM);
        store = AttentionBenchmark.storage(dtype, impl, kernel).create(new HeadStoreFactory.Spec(shape, 0, 0));
        AttentionBenchmark.fill(store, tokens, 42);
        if (!(store instanceof KeyScoring s)) {
            throw new IllegalStateException(dtype + " store " + store.getClass().getName() + " does not score keys");
        }
        scoring = s;
        state = new GroupAttention(GROUP, HEAD_DIM, kernel);
        float[] queries = AttentionBenchmark.randomFloats(new SplittableRandom(7), GROUP * HEAD_DIM);
        state.begin(queries, 0, (float) (1 / Math.sqrt(HEAD_DIM)));
        logits = new float[GROUP * tokens];
    }

    @Benchmark
    public float score() {
        scoring.scoreKeys(state, tokens, logits, tokens);
        return logits[0] + logits[logits.length - 1];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        store.close();
    }
}
