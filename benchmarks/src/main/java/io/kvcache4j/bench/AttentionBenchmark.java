package io.kvcache4j.bench;

import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.cache.CpuLayerAttention;
import io.kvcache4j.quantization.CodecKernels;
import io.kvcache4j.quantization.Int8Config;
import io.kvcache4j.quantization.KiviConfig;
import io.kvcache4j.quantization.OneBitConfig;
import io.kvcache4j.quantization.OneBitKernels;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.List;
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
 * One decode step of attention for one KV head: headDim 128, a GQA group of 4 query heads, over
 * {@code tokens} stored tokens in the cache's own paged off-heap store, through the cache's CPU layer
 * source (heads cut into chunks of {@link CpuLayerAttention#CHUNK_TOKENS} merged by log-sum-exp) on
 * {@code threads} threads (0: every core). Each op reads every key and value byte once ({@code tokens
 * × 128 × 2 × bytesPerElement}); compare with {@link MemoryBandwidthBenchmark} of the same thread
 * count from the same run.
 *
 * <p>{@code dtype} also takes the quantizing stores at their defaults ({@code int8}, {@code int4} and
 * {@code int2} with KIVI's G = 32 and R = 128, {@code 1bit} with G = 64; {@code 1bit-g128} is the
 * 1-bit store with groups of 128 tokens, half the levels and key tables per key): attention then
 * runs on their packed codes, through the same layer source, with the codec's Vector API kernel or its
 * scalar twin; compare with {@code f16} of the same run and thread count.
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
public class AttentionBenchmark {
    static final int HEAD_DIM = 128;
    static final int GROUP = 4;

    @Param({"4096", "65536", "1048576"})
    public int tokens;

    @Param({"f32", "f16", "bf16", "int8", "int4", "int2", "1bit"})
    public String dtype;

    @Param({"vector", "scalar"})
    public String impl;

    /**
     * Tokens per page of the exact stores; 0 (the default) gives each storage the page a full cache
     * gets from {@code KvCache.builder}: {@link KvCacheBuilder#FULL_CACHE_PAGE_TOKENS} for f32, f16
     * and bf16, 16 for the quantizing stores.
     */
    @Param({"0"})
    public int pageTokens;

    /** Threads attending; 0 means every core. */
    @Param({"1", "0"})
    public int threads;

    HeadStore store;
    AttentionPool pool;
    CpuLayerAttention source;
    LayerBatch batch;
    float[] queries;
    float[] out;
    float scale;

    @Setup(Level.Trial)
    public void setup() {
        AttentionKernel kernel = kernel(impl);
        ModelShape shape = new ModelShape(1, GROUP, 1, HEAD_DIM);
        store = storage(dtype, impl, kernel, pageTokens).create(new HeadStoreFactory.Spec(shape, 0, 0));
        fill(store, tokens, 42);
        int n = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        pool = n > 1 ? AttentionPool.create(n) : null;
        source = new CpuLayerAttention(new LayerContext(shape, 0, new HeadStore[] {store}, pool), kernel);
        queries = randomFloats(new SplittableRandom(7), GROUP * HEAD_DIM);
        out = new float[GROUP * HEAD_DIM];
        scale = (float) (1 / Math.sqrt(HEAD_DIM));
        batch = new LayerBatch(shape, 1).set(0, 1, queries, 0, scale, out, 0, null, 0, null, null);
        batch.setVisible(0, 0, tokens);
    }

    @Benchmark
    public float decode() {
        source.attend(batch);
        return out[0] + out[out.length - 1];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        if (pool != null) {
            pool.close();
        }
        store.close();
    }

    /** Exact pages of 16 tokens for f32/f16/bf16; the quantizing stores with the codec kernel matching {@code impl}. */
    static HeadStoreFactory storage(String dtype, String impl, AttentionKernel kernel) {
        return storage(dtype, impl, kernel, 16);
    }

    /**
     * {@link #storage(String, String, AttentionKernel)} with exact pages of {@code pageTokens} tokens,
     * or for 0 the pages a full cache gets ({@link KvCacheBuilder#FULL_CACHE_PAGE_TOKENS} for exact
     * types, 16 for the quantizing stores).
     */
    static HeadStoreFactory storage(String dtype, String impl, AttentionKernel kernel, int pageTokens) {
        boolean vector = impl.equals("vector");
        boolean exact = List.of("f32", "f16", "bf16").contains(dtype);
        if (pageTokens == 0) {
            pageTokens = exact ? KvCacheBuilder.FULL_CACHE_PAGE_TOKENS : 16;
        }
        if (pageTokens != 16 && !exact) {
            throw new IllegalArgumentException(
                    "pageTokens applies to f32, f16 and bf16 only; " + dtype + " takes 16, was " + pageTokens);
        }
        return switch (dtype) {
            case "f32", "f16", "bf16" -> HeadStoreFactory.exact(KvDType.parse(dtype), pageTokens, kernel);
            case "int8" -> new Int8Config(16).factory(vector ? codecKernel() : CodecKernels.scalar(), kernel);
            case "int4", "int2" ->
                KiviConfig.defaults(dtype.equals("int4") ? 4 : 2)
                        .factory(16, vector ? codecKernel() : CodecKernels.scalar(), kernel);
            case "1bit", "1bit-g128" -> {
                var k = vector ? OneBitKernels.get() : OneBitKernels.scalar();
                if (vector && k == OneBitKernels.scalar()) {
                    throw new IllegalStateException(
                            "impl=vector but the 1-bit kernel is scalar: " + OneBitKernels.reason());
                }
                OneBitConfig config = dtype.equals("1bit")
                        ? OneBitConfig.group()
                        : OneBitConfig.group(128, OneBitConfig.DEFAULT_KEY_CLIP, OneBitConfig.DEFAULT_VALUE_CLIP);
                yield config.factory(k, kernel);
            }
            default ->
                throw new IllegalArgumentException(
                        "dtype must be f32, f16, bf16, int8, int4, int2, 1bit or 1bit-g128, was " + dtype);
        };
    }

    private static io.kvcache4j.quantization.CodecKernel codecKernel() {
        var k = CodecKernels.get();
        if (k.getClass() == CodecKernels.scalar().getClass()) {
            throw new IllegalStateException("impl=vector but the codec kernel is scalar: " + CodecKernels.reason());
        }
        return k;
    }

    static AttentionKernel kernel(String impl) {
        return switch (impl) {
            case "vector" -> {
                AttentionKernel k = AttentionKernels.get();
                if (!k.name().equals("panama")) {
                    throw new IllegalStateException(
                            "impl=vector but the active kernel is " + k.name() + ": " + AttentionKernels.reason());
                }
                yield k;
            }
            case "scalar" -> AttentionKernels.scalar();
            default -> throw new IllegalArgumentException("impl must be vector or scalar, was " + impl);
        };
    }

    /** Appends {@code tokens} random tokens (a 4096-token random block repeated). */
    static void fill(HeadStore store, int tokens, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int block = 4096;
        float[] k = randomFloats(r, block * HEAD_DIM);
        float[] v = randomFloats(r, block * HEAD_DIM);
        for (int t = 0; t < tokens; t++) {
            int row = (t % block) * HEAD_DIM;
            store.append(k, row, v, row, 0, 1);
        }
    }

    static float[] randomFloats(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return a;
    }
}
