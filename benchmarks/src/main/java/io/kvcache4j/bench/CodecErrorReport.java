package io.kvcache4j.bench;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadView;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.llama.LlamaEngine;
import io.kvcache4j.eval.niah.Haystack;
import io.kvcache4j.eval.niah.Needle;
import io.kvcache4j.eval.niah.NiahPrompt;
import io.kvcache4j.eval.niah.TextCodec;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStores;
import io.kvcache4j.store.SlotSelection;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Attention-output error of every storage kind, with and without the randomized Hadamard rotation,
 * against exact attention computed in float64 on the same keys, values and queries:
 *
 * <ol>
 *   <li><b>shipped model</b>: the keys and values the shipped model stores for a NIAH prompt (exact
 *       f32 cache), and the queries of the prompt's last {@code --queries} positions as the engine
 *       hands them to the cache; each query attends causally over its prefix;
 *   <li><b>random</b>: Gaussian keys, values and queries of the same shape, with four key channels
 *       scaled by 10 (outlier channels, as real keys have them).
 * </ol>
 *
 * For each (layer, KV head, query, query head) the relative error {@code ‖o − o*‖₂ / ‖o*‖₂} of the
 * store's output {@code o} against the float64 reference {@code o*}; the table gives the mean and
 * the maximum, and the store's bytes per token against f16. Run: {@code java -cp
 * benchmarks/target/benchmarks.jar --add-modules=jdk.incubator.vector io.kvcache4j.bench.CodecErrorReport
 * [--tokens N] [--queries N]}.
 */
public final class CodecErrorReport {
    static final List<String> STORAGES = List.of("f16", "int8", "int4", "int2", "1bit", "1bit-quantile");

    private CodecErrorReport() {}

    public static void main(String[] args) throws IOException {
        int tokens = 4032;
        int queries = 32;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--tokens" -> tokens = positive(args, ++i, "--tokens");
                case "--queries" -> queries = positive(args, ++i, "--queries");
                default -> {
                    System.err.println(
                            "codec-error: unknown option '" + args[i] + "'; allowed: --tokens N, --queries N");
                    System.exit(2);
                }
            }
        }
        if (queries > tokens) {
            System.err.println("codec-error: --queries " + queries + " must be in [1, --tokens " + tokens + "]");
            System.exit(2);
        }
        Path shipped = Path.of("model/kvcache4j-niah.gguf");
        if (!Files.isRegularFile(shipped)) {
            System.err.println("codec-error: shipped model not found at " + shipped.toAbsolutePath());
            System.exit(1);
        }
        Data model = recordShipped(shipped, tokens, queries);
        Data random = random(model.shape, tokens, queries, 17);
        System.out.printf(
                Locale.ROOT,
                "%n%d tokens, the last %d positions as queries; relative L2 error of the attention output%n%n",
                tokens,
                queries);
        System.out.println("| storage | bytes/token vs f16 | shipped model: mean | max | + rotation: mean | max |"
                + " random: mean | max | + rotation: mean | max |");
        System.out.println("|---|---|---|---|---|---|---|---|---|---|");
        for (String name : STORAGES) {
            Error m = error(model, name);
            Error mr = error(model, name + "+rht");
            Error r = error(random, name);
            Error rr = error(random, name + "+rht");
            System.out.printf(
                    Locale.ROOT,
                    "| %s | %.3f | %.2e | %.2e | %.2e | %.2e | %.2e | %.2e | %.2e | %.2e |%n",
                    name,
                    m.bytesRatio,
                    m.mean,
                    m.max,
                    mr.mean,
                    mr.max,
                    r.mean,
                    r.max,
                    rr.mean,
                    rr.max);
        }
    }

    private static int positive(String[] args, int i, String option) {
        if (i >= args.length) {
            System.err.println("codec-error: " + option + " needs a value");
            System.exit(2);
        }
        try {
            int v = Integer.parseInt(args[i]);
            if (v >= 1 && v <= 1 << 20) {
                return v;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        System.err.println("codec-error: " + option + " must be a whole number in [1, 1048576], was '" + args[i] + "'");
        System.exit(2);
        return 0;
    }

    /** Keys and values per (layer, KV head), {@code [tokens][headDim]}; queries per layer and query position. */
    record Data(ModelShape shape, int tokens, float[][][] keys, float[][][] values, float[][][] queries) {
        /** Position of query {@code i}. */
        int position(int i) {
            return tokens - queries[0].length + i;
        }
    }

    record Error(double mean, double max, double bytesRatio) {}

    static Data recordShipped(Path path, int tokens, int queries) throws IOException {
        int[] prompt;
        try (GgufModel m = GgufModel.open(path)) {
            TextCodec codec = PeerBenchmark.codec(Tokenizer.fromGguf(m));
            prompt = NiahPrompt.build(
                            Haystack.builtIn(codec),
                            codec,
                            Needle.standard("violet lantern", "4718265"),
                            tokens,
                            0.5,
                            new SplittableRandom(1))
                    .all();
        }
        try (GgufLlama llama = GgufLlama.open(path)) {
            ModelShape shape = llama.config().cacheShape();
            int n = prompt.length;
            float[][][] q = new float[shape.layers()][queries][];
            EvictionPolicy recorder = new EvictionPolicy() {
                @Override
                public String name() {
                    return "full";
                }

                @Override
                public EvictionTracker bind(CacheAccess cache) {
                    return new EvictionTracker() {
                        @Override
                        public ScoreAggregation scoreAggregation() {
                            return null;
                        }

                        @Override
                        public void beforeAttention(int layer, int position, float[] queriesRow, int offset) {
                            int i = position - (n - queries);
                            if (i >= 0 && i < queries) {
                                q[layer][i] = java.util.Arrays.copyOfRange(
                                        queriesRow, offset, offset + shape.queryRowFloats());
                            }
                        }
                    };
                }
            };
            float[][][] k = new float[shape.layers() * shape.kvHeads()][][];
            float[][][] v = new float[shape.layers() * shape.kvHeads()][][];
            try (KvCache cache = KvCache.builder(shape)
                    .store(HeadStores.factory("f32", 16))
                    .policy(recorder)
                    .build()) {
                new LlamaEngine(llama, 256).forward(prompt, 0, n, cache);
                for (int l = 0; l < shape.layers(); l++) {
                    for (int h = 0; h < shape.kvHeads(); h++) {
                        HeadView view = cache.view(l, h);
                        float[][] kk = new float[n][shape.headDim()];
                        float[][] vv = new float[n][shape.headDim()];
                        for (int s = 0; s < n; s++) {
                            view.readKey(s, kk[s], 0);
                            view.readValue(s, vv[s], 0);
                        }
                        k[l * shape.kvHeads() + h] = kk;
                        v[l * shape.kvHeads() + h] = vv;
                    }
                }
            }
            return new Data(shape, n, k, v, q);
        }
    }

    static Data random(ModelShape shape, int tokens, int queries, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int d = shape.headDim();
        int heads = shape.layers() * shape.kvHeads();
        float[][][] k = new float[heads][tokens][d];
        float[][][] v = new float[heads][tokens][d];
        for (int h = 0; h < heads; h++) {
            for (int t = 0; t < tokens; t++) {
                for (int i = 0; i < d; i++) {
                    k[h][t][i] = (float) (r.nextGaussian() * (i % (d / 4) == 1 ? 10 : 1));
                    v[h][t][i] = (float) r.nextGaussian();
                }
            }
        }
        float[][][] q = new float[shape.layers()][queries][shape.queryRowFloats()];
        for (float[][] layer : q) {
            for (float[] row : layer) {
                for (int i = 0; i < row.length; i++) {
                    row[i] = (float) r.nextGaussian();
                }
            }
        }
        return new Data(shape, tokens, k, v, q);
    }

    static Error error(Data data, String storage) {
        ModelShape shape = data.shape;
        int d = shape.headDim();
        int group = shape.groupSize();
        float scale = (float) (1 / Math.sqrt(d));
        HeadStoreFactory factory = HeadStores.factory(storage, 16);
        double sum = 0;
        double max = 0;
        long count = 0;
        long bytes = 0;
        float[] out = new float[group * d];
        double[] ref = new double[d];
        SlotSelection selection = new SlotSelection();
        GroupAttention state = new GroupAttention(group, d);
        for (int l = 0; l < shape.layers(); l++) {
            for (int h = 0; h < shape.kvHeads(); h++) {
                float[][] k = data.keys[l * shape.kvHeads() + h];
                float[][] v = data.values[l * shape.kvHeads() + h];
                try (HeadStore store = factory.create(new HeadStoreFactory.Spec(shape, l, h))) {
                    for (int t = 0; t < data.tokens; t++) {
                        store.append(k[t], 0, v[t], 0, 0, 1);
                    }
                    bytes += store.bytesHeld();
                    for (int i = 0; i < data.queries[l].length; i++) {
                        int visible = data.position(i) + 1;
                        float[] q = data.queries[l][i];
                        state.begin(q, h * group * d, scale);
                        store.attend(state, selection.prefix(visible));
                        state.finish(out, 0);
                        for (int g = 0; g < group; g++) {
                            reference(q, (h * group + g) * d, k, v, visible, scale, ref);
                            double num = 0;
                            double den = 0;
                            for (int x = 0; x < d; x++) {
                                double diff = out[g * d + x] - ref[x];
                                num += diff * diff;
                                den += ref[x] * ref[x];
                            }
                            double e = Math.sqrt(num / den);
                            sum += e;
                            max = Math.max(max, e);
                            count++;
                        }
                    }
                }
            }
        }
        double f16Bytes = 2.0 * 2 * d * data.tokens * shape.layers() * shape.kvHeads();
        return new Error(sum / count, max, bytes / f16Bytes);
    }

    /** Softmax attention of one query head over the first {@code visible} keys, in float64. */
    static void reference(float[] q, int qOff, float[][] k, float[][] v, int visible, float scale, double[] out) {
        int d = out.length;
        double[] s = new double[visible];
        double m = Double.NEGATIVE_INFINITY;
        for (int t = 0; t < visible; t++) {
            double dot = 0;
            for (int x = 0; x < d; x++) {
                dot += (double) (q[qOff + x] * scale) * k[t][x];
            }
            s[t] = dot;
            m = Math.max(m, dot);
        }
        java.util.Arrays.fill(out, 0);
        double z = 0;
        for (int t = 0; t < visible; t++) {
            double w = Math.exp(s[t] - m);
            z += w;
            for (int x = 0; x < d; x++) {
                out[x] += w * v[t][x];
            }
        }
        for (int x = 0; x < d; x++) {
            out[x] /= z;
        }
    }
}
