package io.kvcache4j.bench;

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
import org.openjdk.jmh.annotations.Warmup;

/**
 * The attention loop of a plain-array engine (the shape of llama3.java's per-head loop): for each
 * query head, a scalar dot per cached token into a score array, a softmax over it, then a scalar
 * saxpy of every value row. f32 {@code float[]} cache laid out {@code [token][headDim]} for one KV
 * head, headDim 128, 4 query heads: the same work as {@link AttentionBenchmark} with f32.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms6g", "-Xmx6g"
        })
public class NaiveAttentionBenchmark {
    static final int D = AttentionBenchmark.HEAD_DIM;
    static final int GROUP = AttentionBenchmark.GROUP;

    @Param({"4096", "65536", "1048576"})
    public int tokens;

    float[] keys;
    float[] values;
    float[] q;
    float[] att;
    float[] out;

    @Setup(Level.Trial)
    public void setup() {
        SplittableRandom r = new SplittableRandom(42);
        keys = AttentionBenchmark.randomFloats(r, tokens * D);
        values = AttentionBenchmark.randomFloats(r, tokens * D);
        q = AttentionBenchmark.randomFloats(r, GROUP * D);
        att = new float[tokens];
        out = new float[GROUP * D];
    }

    @Benchmark
    public float decode() {
        float scale = (float) (1 / Math.sqrt(D));
        for (int h = 0; h < GROUP; h++) {
            for (int t = 0; t < tokens; t++) {
                float s = 0f;
                for (int i = 0; i < D; i++) {
                    s += q[h * D + i] * keys[t * D + i];
                }
                att[t] = s * scale;
            }
            float max = Float.NEGATIVE_INFINITY;
            for (int t = 0; t < tokens; t++) {
                max = Math.max(max, att[t]);
            }
            float sum = 0f;
            for (int t = 0; t < tokens; t++) {
                att[t] = (float) Math.exp(att[t] - max);
                sum += att[t];
            }
            for (int i = 0; i < D; i++) {
                out[h * D + i] = 0f;
            }
            for (int t = 0; t < tokens; t++) {
                float a = att[t] / sum;
                for (int i = 0; i < D; i++) {
                    out[h * D + i] += a * values[t * D + i];
                }
            }
        }
        return out[0];
    }
}
