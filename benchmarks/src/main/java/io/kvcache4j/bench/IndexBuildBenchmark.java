package io.kvcache4j.bench;

import io.kvcache4j.retrieval.KeyIndex;
import io.kvcache4j.retrieval.KeyIndexOptions;
import io.kvcache4j.retrieval.KeyIndexes;
import java.util.Locale;
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
 * Building a retrieval index over the keys of one (layer, KV head): {@code keys} keys of dimension
 * 128 in one batch (what a prefill hands the index), after {@code 1024} sample queries for the
 * indexes that use them ({@code roar}). Divide the time by {@code keys / 1000} for the cost per 1K
 * tokens. Each trial also prints the index's bytes against the f16 K+V bytes of the tokens it
 * indexes ({@code 4·d} per token), the memory figure that goes with it.
 *
 * <p>Keys N(0, 1) plus a shared mean per channel (keys of one head share a large mean, queries do
 * not: the mismatch RetrievalAttention describes); queries N(0, 1).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 1)
@Measurement(iterations = 3)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms2g", "-Xmx2g"
        })
public class IndexBuildBenchmark {
    static final int D = 128;
    static final int QUERIES = 1024;

    @Param({"flat", "hnsw", "roar"})
    public String index;

    @Param({"16384"})
    public int keys;

    float[] keyRows;
    float[] queries;
    int[] slots;
    KeyIndex built;

    @Setup(Level.Trial)
    public void data() {
        SplittableRandom r = new SplittableRandom(3);
        float[] mean = new float[D];
        for (int j = 0; j < D; j++) {
            mean[j] = (float) (1.5 * r.nextGaussian());
        }
        keyRows = new float[keys * D];
        for (int i = 0; i < keyRows.length; i++) {
            keyRows[i] = mean[i % D] + (float) r.nextGaussian();
        }
        queries = new float[QUERIES * D];
        for (int i = 0; i < queries.length; i++) {
            queries[i] = (float) r.nextGaussian();
        }
        slots = new int[keys];
        for (int i = 0; i < keys; i++) {
            slots[i] = i;
        }
    }

    @Benchmark
    public int build() {
        if (built != null) {
            built.close();
        }
        built = KeyIndexes.create(index, D, KeyIndexOptions.defaults());
        built.observeQueries(queries, QUERIES);
        built.add(slots, keyRows, keys);
        return built.size();
    }

    @TearDown(Level.Iteration)
    public void report() {
        if (built != null) {
            System.out.printf(
                    Locale.ROOT,
                    "%n%s over %d keys: %d bytes = %.3f x the f16 K+V of the tokens indexed%n",
                    index,
                    keys,
                    built.bytes(),
                    built.bytes() / (4.0 * D * keys));
            built.close();
            built = null;
        }
    }
}
