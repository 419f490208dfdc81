package io.kvcache4j.bench;

import com.github.tjake.jlama.math.VectorMath;
import com.github.tjake.jlama.tensor.FloatBufferTensor;
import com.github.tjake.jlama.tensor.operations.TensorOperations;
import com.github.tjake.jlama.tensor.operations.TensorOperationsProvider;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
 * Jlama's decode attention path (com.github.tjake:jlama-core 0.8.4) on the data of {@link
 * AttentionBenchmark} (f32, headDim 128, 4 query heads on one KV head): per query head,
 * {@code TensorOperations.batchDotProduct} of the query against the key rows, scale, {@code
 * VectorMath.softMax}, then {@code TensorOperations.saxpy} of the weights over the value rows — the
 * calls Jlama's {@code CausalSelfAttention} makes per KV page, here over one page holding every
 * token. Setup checks that the output equals kvcache4j's on the same data.
 *
 * <p>Jlama's operations provider sets {@code jdk.incubator.vector.VECTOR_ACCESS_OOB_CHECK=0}
 * process-wide when it loads; this benchmark runs in its own fork so no other result is affected.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms4g", "-Xmx4g"
        })
public class JlamaAttentionBenchmark {
    static final int D = AttentionBenchmark.HEAD_DIM;
    static final int GROUP = AttentionBenchmark.GROUP;

    @Param({"4096", "65536", "1048576"})
    public int tokens;

    TensorOperations ops;
    FloatBufferTensor keys;
    FloatBufferTensor values;
    FloatBufferTensor query;
    FloatBufferTensor attn;
    FloatBufferTensor out;
    float scale;

    @Setup(Level.Trial)
    public void setup() {
        ops = TensorOperationsProvider.get();
        SplittableRandom r = new SplittableRandom(42);
        int block = 4096;
        float[] k = AttentionBenchmark.randomFloats(r, block * D);
        float[] v = AttentionBenchmark.randomFloats(r, block * D);
        float[] q = AttentionBenchmark.randomFloats(new SplittableRandom(7), GROUP * D);
        keys = new FloatBufferTensor(tokens, D);
        values = new FloatBufferTensor(tokens, D);
        MemorySegment kSeg = keys.getMemorySegment();
        MemorySegment vSeg = values.getMemorySegment();
        for (int t = 0; t < tokens; t += block) {
            int n = Math.min(block, tokens - t);
            MemorySegment.copy(k, 0, kSeg, ValueLayout.JAVA_FLOAT_UNALIGNED, (long) t * D * 4, n * D);
            MemorySegment.copy(v, 0, vSeg, ValueLayout.JAVA_FLOAT_UNALIGNED, (long) t * D * 4, n * D);
        }
        query = new FloatBufferTensor(1, GROUP * D);
        for (int i = 0; i < q.length; i++) {
            query.set(q[i], 0, i);
        }
        attn = new FloatBufferTensor(1, tokens);
        out = new FloatBufferTensor(1, GROUP * D);
        scale = (float) (1 / Math.sqrt(D));
        check(k, v, q);
    }

    @Benchmark
    public float decode() {
        out.clear();
        for (int h = 0; h < GROUP; h++) {
            ops.batchDotProduct(attn, query, keys, h * D, 0, D, 0, 0, tokens);
            ops.scale(scale, attn, 0, tokens);
            VectorMath.softMax(attn, 0, tokens);
            ops.saxpy(attn, values, out, 0, h * D, D, 0, 0, tokens);
        }
        return out.get(0, 0);
    }

    /** Same data through kvcache4j (f32 storage): the outputs must agree, or the comparison is void. */
    private void check(float[] k, float[] v, float[] q) {
        try (PagedHeadStore store = new PagedHeadStore(KvDType.F32, D, 16, AttentionBenchmark.kernel("vector"))) {
            for (int t = 0; t < tokens; t++) {
                int row = (t % 4096) * D;
                store.append(k, row, v, row, 0, 1);
            }
            GroupAttention st = new GroupAttention(GROUP, D);
            st.begin(q, 0, scale);
            store.attend(st, new SlotSelection().prefix(tokens));
            float[] ours = new float[GROUP * D];
            st.finish(ours, 0);
            decode();
            double err = 0;
            double mag = 0;
            for (int i = 0; i < ours.length; i++) {
                err = Math.max(err, Math.abs(ours[i] - out.get(0, i)));
                mag = Math.max(mag, Math.abs(ours[i]));
            }
            if (err > 1e-3 * Math.max(mag, 1e-3)) {
                throw new IllegalStateException(
                        "Jlama and kvcache4j disagree: max abs difference " + err + " (max |out| " + mag + ")");
            }
        }
    }
}
