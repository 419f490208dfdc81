package io.kvcache4j.bench;

import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.eval.gguf.GgmlType;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.llama.LlamaConfig;
import io.kvcache4j.eval.llama.LlamaEngine;
import io.kvcache4j.eval.llama.RandomLlamaGguf;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
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
 * Speed of the reference engine with the full cache on a random-weight Llama of a fixed shape (4
 * layers, d 512, 8 query heads, {@code kvHeads} KV heads (2 by default), FFN 1408, vocab 4096, F16
 * matrices by default): one
 * prefill of {@code promptTokens} (ops = prompts; tokens/s = promptTokens / time) and one decode step
 * after a prompt of {@code promptTokens}. {@code attentionPool}: whether the caches attend on the
 * engine's {@link io.kvcache4j.eval.llama.Parallel#attentionPool()} (every core) or on the calling
 * thread, for a same-run comparison.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class EngineBenchmark {
    static final LlamaConfig SHAPE = new LlamaConfig(4096, 512, 4, 8, 2, 64, 1408, 1e-5f, 10000f, 1f, 4096);

    /** The shipped NIAH model's shape (d_model 128, head_dim 32, SwiGLU 352), random weights. */
    static final LlamaConfig SHIPPED = new LlamaConfig(2048, 128, 4, 4, 2, 32, 352, 1e-5f, 10000f, 1f, 8192);

    /** {@code d512} ({@link #SHAPE}) or {@code shipped} ({@link #SHIPPED}). */
    @Param({"d512"})
    public String modelShape;

    /** KV heads of the 8 query heads: 2 (GQA groups of 4, the default), 8 (multi-head attention) or 4, 1. */
    @Param({"2"})
    public int kvHeads;

    LlamaConfig shape;

    @Param({"512"})
    public int promptTokens;

    @Param({"F16"})
    public String weights;

    @Param({"true", "false"})
    public boolean attentionPool;

    /** Tokens per page of the caches; 0 (the default) is what the builder gives a full cache. */
    @Param({"0"})
    public int pageTokens;

    Path file;
    GgufLlama model;
    LlamaEngine engine;
    int[] prompt;
    KvCache decodeCache;
    int[] next = new int[1];

    @Setup(Level.Trial)
    public void setup() throws IOException {
        file = Files.createTempFile("kvcache4j-engine-bench", ".gguf");
        LlamaConfig base = switch (modelShape) {
            case "d512" -> SHAPE;
            case "shipped" -> SHIPPED;
            default -> throw new IllegalArgumentException("modelShape must be d512 or shipped, was " + modelShape);
        };
        shape = new LlamaConfig(
                base.vocabSize(),
                base.dim(),
                base.layers(),
                base.heads(),
                kvHeads,
                base.headDim(),
                base.ffnDim(),
                base.rmsEps(),
                base.ropeTheta(),
                base.ropeLinearFactor(),
                base.contextLength());
        RandomLlamaGguf.write(file, shape, GgmlType.valueOf(weights), 11);
        model = GgufLlama.open(file);
        engine = new LlamaEngine(model, 256);
        SplittableRandom r = new SplittableRandom(5);
        prompt = new int[promptTokens];
        for (int i = 0; i < promptTokens; i++) {
            prompt[i] = r.nextInt(shape.vocabSize());
        }
    }

    @Setup(Level.Iteration)
    public void freshDecodeCache() {
        if (decodeCache != null) {
            decodeCache.close();
        }
        decodeCache = newCache();
        engine.forward(prompt, 0, prompt.length, decodeCache);
    }

    @Benchmark
    public float prefill() {
        try (KvCache cache = newCache()) {
            return engine.forward(prompt, 0, prompt.length, cache)[0];
        }
    }

    private KvCache newCache() {
        var b = KvCache.builder(shape.cacheShape()).dtype(KvDType.F16);
        if (pageTokens != 0) {
            b.pageTokens(pageTokens);
        }
        if (attentionPool) {
            b.attentionPool(io.kvcache4j.eval.llama.Parallel.attentionPool());
        }
        return b.build();
    }

    @Benchmark
    public float decode() {
        next[0] = (next[0] + 7) % shape.vocabSize();
        return engine.forward(next, 0, 1, decodeCache)[0];
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        decodeCache.close();
        model.close();
        Files.deleteIfExists(file);
    }
}
