package io.kvcache4j.bench;

import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;
import io.kvcache4j.store.HeadStores;
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
 * Decode latency of the tiered storage kinds against full attention over the same tokens, same
 * thread count, same layer-source path as the cache ({@link HeadStoreFactory#layerAttention}): one
 * query token, one KV head with a GQA group of 4, head dimension 128, {@code tokens} tokens in the
 * cache.
 *
 * <ul>
 *   <li>{@code full}: every token in exact f16 pages (kv-api's CPU source);
 *   <li>{@code retrieval}: sinks and recent window ({@code budget} of the tokens) attended whole, the
 *       top 128 of the rest found by an exact scan and attended exactly (RetrievalAttention);
 *   <li>{@code hgca}: the window dense, per query head the slow-tier keys whose logit is within 10 of
 *       the head's best (at most a quarter of them) sparse (HGCA);
 *   <li>{@code retrieval-roar}: {@code retrieval} with the slow tier behind the {@code roar} graph
 *       index (its build, 170–390 ms per 1K keys, makes the 1M setup take minutes: pass it with
 *       {@code -p kind=retrieval-roar -p tokens=65536});
 *   <li>{@code headinfer}: every head offloaded to the slow tier and staged for the layer (exact).
 * </ul>
 *
 * <p>Data: keys and values N(0, 1) per component, fresh for every token; queries N(0, {@code
 * logitStd}²), so the logits q·k/√d spread with standard deviation {@code logitStd}. How many keys
 * HGCA attends depends on that spread (at 4, the Gaussian tail within 10 of the best logit is about
 * 4 % of the slow tier at 64K tokens and 0.7 % at 1M, per query head; at 1 all of it would be, capped
 * at a quarter); retrieval's cost does not. {@code retrieval-roar} on these unstructured keys shows
 * what the graph costs when it cannot navigate; its recall on keys and queries shaped like attention's
 * is measured by the retrieval-index module's {@code RetrievalBenchmark}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms2g", "-Xmx2g"
        })
public class TierDecodeBenchmark {
    static final int HEAD_DIM = 128;
    static final int GROUP = 4;

    @Param({"65536", "1048576"})
    public int tokens;

    @Param({"full", "retrieval", "hgca"})
    public String kind;

    /** The fast tier's share of the tokens (sinks plus recent window), as {@code --budget} takes it. */
    @Param({"0.05"})
    public String budget;

    /** Threads attending; 0 means every core. */
    @Param({"1"})
    public int threads;

    @Param({"4"})
    public double logitStd;

    HeadStore store;
    AttentionPool pool;
    LayerAttention source;
    LayerBatch batch;
    float[] out;

    @Setup(Level.Trial)
    public void setup() {
        ModelShape shape = new ModelShape(1, GROUP, 1, HEAD_DIM);
        HeadStoreFactory factory = factory(kind, budget, tokens);
        store = factory.create(new HeadStoreFactory.Spec(shape, 0, 0));
        fill(store, tokens, 42);
        int n = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        pool = n > 1 ? AttentionPool.create(n) : null;
        source = factory.layerAttention(new LayerContext(shape, 0, new HeadStore[] {store}, pool));
        SplittableRandom r = new SplittableRandom(7);
        float[] queries = new float[GROUP * HEAD_DIM];
        for (int i = 0; i < queries.length; i++) {
            queries[i] = (float) (logitStd * r.nextGaussian());
        }
        out = new float[GROUP * HEAD_DIM];
        float scale = (float) (1 / Math.sqrt(HEAD_DIM));
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
        if (source instanceof AutoCloseable c) {
            try {
                c.close();
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
        if (pool != null) {
            pool.close();
        }
        store.close();
    }

    /** {@code full}: exact f16 pages; otherwise the registered kind, sized by {@code budget} where it is. */
    static HeadStoreFactory factory(String kind, String budget, int tokens) {
        if (kind.equals("full")) {
            return HeadStoreFactory.exact(KvDType.F16, 16, AttentionKernels.get());
        }
        HeadStoreProvider p = HeadStores.provider(kind);
        return p.sizedByBudget() ? p.factory(16, Budget.parse(budget), tokens) : p.factory(16);
    }

    /** Appends {@code tokens} tokens of N(0, 1) keys and values, 4,096 at a time. */
    static void fill(HeadStore store, int tokens, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int block = 4096;
        float[] k = new float[block * HEAD_DIM];
        float[] v = new float[block * HEAD_DIM];
        for (int t = 0; t < tokens; t += block) {
            int n = Math.min(block, tokens - t);
            for (int i = 0; i < n * HEAD_DIM; i++) {
                k[i] = (float) r.nextGaussian();
                v[i] = (float) r.nextGaussian();
            }
            store.append(k, 0, v, 0, HEAD_DIM, n);
        }
    }
}
