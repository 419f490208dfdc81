package io.kvcache4j.eval.niah;

import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.llama.LlamaEngine;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import io.kvcache4j.retrieval.FlatKeyIndex;
import io.kvcache4j.retrieval.KeyHits;
import io.kvcache4j.retrieval.KeyIndex;
import io.kvcache4j.retrieval.KeyIndexOptions;
import io.kvcache4j.retrieval.KeyIndexes;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import org.roaringbitmap.RoaringBitmap;

/**
 * Recall of the retrieval indexes on keys and queries recorded from the shipped model: a NIAH prompt
 * runs through the engine on an exact f16 cache whose stores and layer sources are watched (keys as
 * the cache holds them, f16-rounded and rotated; queries as the layer sources receive them); then,
 * for every (layer, KV head), the keys of the prompt's first {@code n} positions are indexed (the
 * prefill queries of those positions train {@code roar}, as RetrievalAttention builds its graph from
 * prefill queries) and each later query (the prompt's question, then the greedy answer's tokens),
 * per query head of the group, searches it for its top {@code k} by inner product. Reported per index
 * and {@code ef}, over every (layer, KV head, query head, query): recall@k against the exact top k of
 * the same keys, the worst query's, attention-mass recall (softmax mass of {@code q·k/√d} over the
 * indexed keys carried by the keys found, over the exact top k's), and the fraction of keys scanned.
 *
 * <pre>{@code
 * java -cp <niah test classpath> io.kvcache4j.eval.niah.ShippedModelRecall \
 *     length=4096 depth=0.5 k=32 indexes=flat,hnsw,roar efs=32,64,128,256 seed=1 [batch=512]
 * }</pre>
 *
 * <p>With {@code batch}, the index is built as the retrieval storage builds it: each batch's keys,
 * then that batch's queries (which shape the batches after them).
 */
public final class ShippedModelRecall {
    private ShippedModelRecall() {}

    /** Exact f16 stores and CPU layer sources whose stores are kept and whose queries are recorded. */
    static final class Recorder implements HeadStoreFactory {
        private final HeadStoreFactory inner = HeadStoreFactory.exact(KvDType.F16, 16);
        final Map<Integer, HeadStore[]> stores = new HashMap<>();
        /** Per layer, the query rows of every attended token, in order. */
        final Map<Integer, List<float[]>> queries = new HashMap<>();

        @Override
        public HeadStore create(Spec spec) {
            HeadStore s = inner.create(spec);
            stores.computeIfAbsent(spec.layer(), l -> new HeadStore[spec.shape().kvHeads()])[spec.kvHead()] = s;
            return s;
        }

        @Override
        public LayerAttention layerAttention(LayerContext context) {
            LayerAttention cpu = inner.layerAttention(context);
            List<float[]> rows = queries.computeIfAbsent(context.layer(), l -> new ArrayList<>());
            int qRow = context.shape().queryRowFloats();
            return new LayerAttention() {
                @Override
                public void attend(LayerBatch batch) {
                    for (int t = 0; t < batch.tokens(); t++) {
                        int at = batch.queriesOffset() + t * qRow;
                        rows.add(Arrays.copyOfRange(batch.queries(), at, at + qRow));
                    }
                    cpu.attend(batch);
                }

                @Override
                public boolean reportsScores() {
                    return cpu.reportsScores();
                }
            };
        }

        @Override
        public String name() {
            return "f16 (recorded)";
        }
    }

    /** Runs the measurement; arguments {@code name=value} as in the class comment. */
    public static void main(String[] args) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq < 1) {
                throw new IllegalArgumentException("arguments are name=value, was '" + arg + "'");
            }
            a.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        run(
                Integer.parseInt(a.getOrDefault("length", "4096")),
                Double.parseDouble(a.getOrDefault("depth", "0.5")),
                Integer.parseInt(a.getOrDefault("k", "32")),
                Integer.parseInt(a.getOrDefault("steps", "16")),
                a.getOrDefault("indexes", "flat,hnsw,roar").split(","),
                Arrays.stream(a.getOrDefault("efs", "32,64,128,256").split(","))
                        .mapToInt(Integer::parseInt)
                        .toArray(),
                Long.parseLong(a.getOrDefault("seed", "1")),
                a,
                Integer.parseInt(a.getOrDefault("batch", String.valueOf(Integer.MAX_VALUE))),
                System.out);
    }

    /**
     * Records the model on one prompt and prints the table; returns, per index name and ef, the mean
     * recall@k (tests).
     */
    static Map<String, Double> run(
            int length,
            double depth,
            int k,
            int steps,
            String[] indexes,
            int[] efs,
            long seed,
            Map<String, String> options,
            int batch,
            PrintStream out)
            throws Exception {
        Map<String, Double> result = new HashMap<>();
        try (GgufLlama model = GgufLlama.open(ShippedModel.path())) {
            Tokenizer tok = Tokenizer.fromGguf(model.model());
            TextCodec codec = NiahEndToEndTest.codec(tok);
            NiahPrompt prompt = NiahPrompt.build(
                    Haystack.builtIn(codec),
                    codec,
                    Needle.standard("Quiet Harbor", "7365012"),
                    length,
                    depth,
                    new SplittableRandom(seed));
            ModelShape shape = model.config().cacheShape();
            Recorder rec = new Recorder();
            LlamaEngine engine = new LlamaEngine(model, 256);
            int[] all = prompt.all();
            int[] answer = new int[steps];
            try (KvCache cache = KvCache.builder(shape).store(rec).build()) {
                float[] logits = engine.forward(all, 0, all.length, cache);
                for (int t = 0; t < steps; t++) {
                    answer[t] = LlamaEngine.argmax(logits);
                    logits = engine.forward(new int[] {answer[t]}, 0, 1, cache);
                }
                int n = prompt.context().length;
                int d = shape.headDim();
                int g = shape.groupSize();
                out.printf(
                        Locale.ROOT,
                        "shipped model, NIAH prompt of %d tokens (needle at depth %.2f, token %d), seed %d: %d layers x %d KV"
                                + " heads, group %d, d %d; indexed keys: the %d context positions; queries: the %d question"
                                + " tokens and %d answer tokens (\"%s\"), per query head; k = %d (%.1f %% of the keys);"
                                + " built %s%n",
                        all.length,
                        depth,
                        prompt.needleStart(),
                        seed,
                        shape.layers(),
                        shape.kvHeads(),
                        g,
                        d,
                        n,
                        all.length - n,
                        steps,
                        codec.decode(answer, 0, steps).strip(),
                        k,
                        100.0 * k / n,
                        batch >= n ? "in one batch" : "in batches of " + batch + " keys");
                out.println(
                        "index  options                  ef  recall@k  min_recall  mass_recall  scanned_frac  build_ms_per_1K");
                for (String spec : indexes) {
                    int at = spec.indexOf('@');
                    String name = at < 0 ? spec : spec.substring(0, at);
                    String opt = (at < 0 ? options.getOrDefault(name, "") : spec.substring(at + 1)).replace(';', ',');
                    KeyIndexOptions o = KeyIndexOptions.parse(opt);
                    int[] sweep = name.equals("flat") ? new int[] {k} : efs;
                    double[] recall = new double[sweep.length];
                    double[] worst = new double[sweep.length];
                    double[] mass = new double[sweep.length];
                    double[] scanned = new double[sweep.length];
                    Arrays.fill(worst, 1);
                    long queriesRun = 0;
                    double buildNanos = 0;
                    for (int l = 0; l < shape.layers(); l++) {
                        List<float[]> q = rec.queries.get(l);
                        for (int h = 0; h < shape.kvHeads(); h++) {
                            HeadStore s = rec.stores.get(l)[h];
                            int[] slots = new int[n];
                            float[] keys = new float[n * d];
                            for (int x = 0; x < n; x++) {
                                slots[x] = x;
                                s.readKey(x, keys, x * d);
                            }
                            float[] train = new float[n * g * d];
                            for (int x = 0; x < n; x++) {
                                System.arraycopy(q.get(x), h * g * d, train, x * g * d, g * d);
                            }
                            FlatKeyIndex exact = new FlatKeyIndex(d);
                            exact.add(slots, keys, n);
                            try (KeyIndex index = KeyIndexes.create(name, d, o)) {
                                long b0 = System.nanoTime();
                                if (batch >= n) {
                                    index.observeQueries(train, n * g);
                                    index.add(slots, keys, n);
                                } else {
                                    // as the retrieval storage builds it: each chunk's keys, then the chunk's
                                    // queries, which shape the chunks indexed after them
                                    for (int from = 0; from < n; from += batch) {
                                        int c = Math.min(batch, n - from);
                                        index.add(
                                                Arrays.copyOfRange(slots, from, from + c),
                                                Arrays.copyOfRange(keys, from * d, (from + c) * d),
                                                c);
                                        index.observeQueries(
                                                Arrays.copyOfRange(train, from * g * d, (from + c) * g * d), c * g);
                                    }
                                }
                                buildNanos += System.nanoTime() - b0;
                                for (int t = n; t < q.size(); t++) {
                                    for (int j = 0; j < g; j++) {
                                        float[] query =
                                                Arrays.copyOfRange(q.get(t), (h * g + j) * d, (h * g + j + 1) * d);
                                        RoaringBitmap truth =
                                                exact.search(query, k).toBitmap();
                                        double[] p = softmax(query, keys, n, d);
                                        double top = 0;
                                        for (int x : truth) {
                                            top += p[x];
                                        }
                                        for (int e = 0; e < sweep.length; e++) {
                                            KeyHits hits = index.search(query, k, sweep[e]);
                                            double r =
                                                    (double) RoaringBitmap.andCardinality(hits.toBitmap(), truth) / k;
                                            recall[e] += r;
                                            worst[e] = Math.min(worst[e], r);
                                            double found = 0;
                                            for (int i = 0; i < hits.count(); i++) {
                                                found += p[hits.slot(i)];
                                            }
                                            mass[e] += found / top;
                                            scanned[e] += hits.scannedFraction();
                                        }
                                        queriesRun++;
                                    }
                                }
                            }
                        }
                    }
                    double perK = buildNanos / 1e6 / (shape.layers() * shape.kvHeads() * (n / 1024.0));
                    for (int e = 0; e < sweep.length; e++) {
                        out.printf(
                                Locale.ROOT,
                                "%-6s %-22s %4d  %8.4f  %10.3f  %11.4f  %12.4f  %15.1f%n",
                                name,
                                o.toString().isEmpty() ? "-" : o.toString(),
                                sweep[e],
                                recall[e] / queriesRun,
                                worst[e],
                                mass[e] / queriesRun,
                                scanned[e] / queriesRun,
                                perK);
                        result.put(spec + "@" + sweep[e], recall[e] / queriesRun);
                    }
                }
            }
        }
        return result;
    }

    /** Softmax of {@code q·k/√d} over the {@code n} keys, in float64. */
    private static double[] softmax(float[] q, float[] keys, int n, int d) {
        double[] p = new double[n];
        double max = Double.NEGATIVE_INFINITY;
        for (int x = 0; x < n; x++) {
            double s = 0;
            for (int j = 0; j < d; j++) {
                s += (double) q[j] * keys[x * d + j];
            }
            p[x] = s / Math.sqrt(d);
            max = Math.max(max, p[x]);
        }
        double sum = 0;
        for (int x = 0; x < n; x++) {
            p[x] = Math.exp(p[x] - max);
            sum += p[x];
        }
        for (int x = 0; x < n; x++) {
            p[x] /= sum;
        }
        return p;
    }
}
