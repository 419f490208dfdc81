package io.kvcache4j.bench;

import io.kvcache4j.internal.vectorization.VectorUtilSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.apache.lucene.util.VectorUtil;
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
import org.openjdk.jmh.annotations.Warmup;

/**
 * Our float dot kernel against Lucene's {@code VectorUtil.dotProduct} (its Panama implementation in
 * this fork) on the same arrays.
 *
 * <p>Each benchmark method runs in forks of its own, and a heap array lands wherever the fork's
 * allocation puts it, so with the default 8-byte object alignment every fork draws its own offset
 * of the arrays within their 64-byte cache lines (how many of the 64-byte vector loads split across
 * two lines), and fork medians of one kernel spread up to 1.7×. The forks run with {@code
 * -XX:ObjectAlignmentInBytes=64}, which puts both kernels' arrays at the same line offset in every
 * fork.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {
            "--add-modules=jdk.incubator.vector",
            "--enable-native-access=ALL-UNNAMED",
            "-Xms1g",
            "-Xmx1g",
            "-XX:ObjectAlignmentInBytes=64"
        })
public class DotProductBenchmark {
    @Param({"32", "64", "128", "256", "1024"})
    public int dims;

    float[] a;
    float[] b;
    VectorUtilSupport kernel;

    @Setup(Level.Trial)
    public void setup() {
        SplittableRandom r = new SplittableRandom(3);
        a = AttentionBenchmark.randomFloats(r, dims);
        b = AttentionBenchmark.randomFloats(r, dims);
        VectorizationProvider p = VectorizationProvider.getInstance();
        if (!p.name().equals("panama")) {
            throw new IllegalStateException("the Vector API implementation is not active: " + p.name());
        }
        kernel = p.vectorUtil();
    }

    @Benchmark
    public float kvcache4j() {
        return kernel.dot(a, 0, b, 0, dims);
    }

    @Benchmark
    public float lucene() {
        return VectorUtil.dotProduct(a, b);
    }
}
