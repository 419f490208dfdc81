package io.kvcache4j.bench;

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
 * f16 decode attention over one KV head (group 4, head_dim 128) and the read ceiling of the same
 * number of bytes on the same number of threads, alternated call by call in one fork: each
 * invocation times one {@link AttentionBenchmark#decode} and then one {@link
 * MemoryBandwidthBenchmark#read} of a buffer as large as the head's keys and values, into two
 * counters. {@code readNs / attentionNs} of the same iteration is the fraction of the read ceiling
 * attention reaches. Separate benchmarks run minutes apart, and on a shared machine the memory's
 * latency drifts between them (the same attention baseline has moved 2× between JMH runs while the
 * read ceiling did not), so a ratio of separate runs measures the drift as much as the kernel; two
 * halves of one invocation see the same conditions.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 8, time = 2)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class AttentionVsReadBenchmark {
    /** Bytes of f16 keys and values one token holds in the benchmark's head. */
    static final int TOKEN_BYTES = 2 * 2 * AttentionBenchmark.HEAD_DIM;

    /** Cached tokens: a multiple of 2,048, so that keys and values make a whole number of MB. */
    @Param({"1048576"})
    public int tokens;

    /** Tokens per page of the f16 store; 0 (the default) is a full cache's, {@link io.kvcache4j.api.KvCacheBuilder#FULL_CACHE_PAGE_TOKENS}. */
    @Param({"0"})
    public int pageTokens;

    /** Threads, for attention and for the read alike; 0 means every core. */
    @Param({"1", "0"})
    public int threads;

    AttentionBenchmark attention;
    MemoryBandwidthBenchmark read;

    @Setup(Level.Trial)
    public void setup() {
        if (tokens < 2048 || tokens % 2048 != 0) {
            throw new IllegalArgumentException(
                    "tokens must be a positive multiple of 2048 (a whole number of MB of f16 keys and values), was "
                            + tokens);
        }
        AttentionBenchmark a = new AttentionBenchmark();
        a.tokens = tokens;
        a.dtype = "f16";
        a.impl = "vector";
        a.pageTokens = pageTokens;
        a.threads = threads;
        MemoryBandwidthBenchmark r = new MemoryBandwidthBenchmark();
        r.megabytes = (int) ((long) tokens * TOKEN_BYTES >> 20);
        r.runKb = 0;
        r.threads = threads;
        a.setup();
        try {
            r.setup();
        } catch (RuntimeException | Error e) {
            a.tearDown();
            throw e;
        }
        attention = a;
        read = r;
    }

    /** Nanoseconds of each half of {@link #alternate}, summed over an iteration. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class Times {
        public long attentionNs;
        public long readNs;

        @Setup(Level.Iteration)
        public void reset() {
            attentionNs = 0;
            readNs = 0;
        }
    }

    /** One attention pass over the head, then one read of as many bytes, each timed into its counter. */
    @Benchmark
    public float alternate(Times t) {
        long t0 = System.nanoTime();
        float x = attention.decode();
        long t1 = System.nanoTime();
        x += read.read();
        long t2 = System.nanoTime();
        t.attentionNs += t1 - t0;
        t.readNs += t2 - t1;
        return x;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        try {
            attention.tearDown();
        } finally {
            read.tearDown();
        }
    }
}
