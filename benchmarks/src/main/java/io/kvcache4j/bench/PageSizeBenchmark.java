package io.kvcache4j.bench;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.cache.CpuLayerAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
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
 * Decode attention over one KV head (head_dim 128, {@code group} query heads) held twice, in stores
 * of 16-token pages and of {@code pageTokens}-token pages with the same rows, attended alternately
 * in one fork: each invocation times one pass over each store into its own counter, so {@code
 * largeNs / smallNs} of an iteration compares the page sizes under the same conditions. The two
 * passes give the same bits (a page scans as its 16-token blocks one by one).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 8, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class PageSizeBenchmark {
    /** Tokens per page of the store compared with 16-token pages: a multiple of 16 above 16. */
    @Param({"32"})
    public int pageTokens;

    @Param({"4096", "65536"})
    public int tokens;

    @Param({"f16"})
    public String dtype;

    /** Query heads per KV head. */
    @Param({"4"})
    public int group;

    /** Elements per head, at most {@link AttentionBenchmark#HEAD_DIM}. */
    @Param({"128"})
    public int headDim = AttentionBenchmark.HEAD_DIM;

    HeadStore small;
    HeadStore large;
    CpuLayerAttention smallSource;
    CpuLayerAttention largeSource;
    LayerBatch smallBatch;
    LayerBatch largeBatch;
    float[] smallOut;
    float[] largeOut;

    @Setup(Level.Trial)
    public void setup() {
        if (pageTokens <= 16 || pageTokens % 16 != 0) {
            throw new IllegalArgumentException("pageTokens must be a multiple of 16 above 16, was " + pageTokens);
        }
        if (group < 1 || tokens < 1) {
            throw new IllegalArgumentException("group and tokens must be >= 1, were " + group + " and " + tokens);
        }
        if (headDim < 1 || headDim > AttentionBenchmark.HEAD_DIM) {
            throw new IllegalArgumentException(
                    "headDim must be in [1, " + AttentionBenchmark.HEAD_DIM + "], was " + headDim);
        }
        AttentionKernel kernel = AttentionBenchmark.kernel("vector");
        ModelShape shape = new ModelShape(1, group, 1, headDim);
        HeadStoreFactory.Spec spec = new HeadStoreFactory.Spec(shape, 0, 0);
        float[] q = AttentionBenchmark.randomFloats(new SplittableRandom(7), group * headDim);
        float scale = (float) (1 / Math.sqrt(headDim));
        small = AttentionBenchmark.storage(dtype, "vector", kernel, 16).create(spec);
        try {
            large = AttentionBenchmark.storage(dtype, "vector", kernel, pageTokens)
                    .create(spec);
        } catch (RuntimeException | Error e) {
            small.close();
            throw e;
        }
        AttentionBenchmark.fill(small, tokens, 42);
        AttentionBenchmark.fill(large, tokens, 42);
        smallOut = new float[group * headDim];
        largeOut = new float[group * headDim];
        smallSource = new CpuLayerAttention(new LayerContext(shape, 0, new HeadStore[] {small}, null), kernel);
        largeSource = new CpuLayerAttention(new LayerContext(shape, 0, new HeadStore[] {large}, null), kernel);
        smallBatch = new LayerBatch(shape, 1).set(0, 1, q, 0, scale, smallOut, 0, null, 0, null, null);
        smallBatch.setVisible(0, 0, tokens);
        largeBatch = new LayerBatch(shape, 1).set(0, 1, q, 0, scale, largeOut, 0, null, 0, null, null);
        largeBatch.setVisible(0, 0, tokens);
    }

    /** Nanoseconds of each pass of {@link #alternate}, summed over an iteration. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class Times {
        public long smallNs;
        public long largeNs;

        @Setup(Level.Iteration)
        public void reset() {
            smallNs = 0;
            largeNs = 0;
        }
    }

    /** One pass over the 16-token pages, then one over the larger ones, each timed into its counter. */
    @Benchmark
    public float alternate(Times t) {
        long t0 = System.nanoTime();
        smallSource.attend(smallBatch);
        long t1 = System.nanoTime();
        largeSource.attend(largeBatch);
        long t2 = System.nanoTime();
        t.smallNs += t1 - t0;
        t.largeNs += t2 - t1;
        return smallOut[0] + largeOut[0];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        try {
            small.close();
        } finally {
            large.close();
        }
    }
}
