package io.kvcache4j.retrieval;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.roaringbitmap.RoaringBitmap;

/**
 * Recall@k against the exact top-k, attention-mass recall (softmax mass of the keys found over the
 * mass of the exact top-k, {@code q·k/√d} over all keys), fraction of keys scanned, search time, build time per 1K keys
 * and index memory against the f16 K+V bytes indexed ({@code 4·d} per token), for each installed
 * index on {@link SyntheticAttention} data: prefill queries train the index, fresh queries from the
 * same distribution are searched.
 *
 * <pre>{@code
 * java -cp <test classpath> io.kvcache4j.retrieval.RetrievalBenchmark \
 *     n=65536 d=128 k=100 train=2048 test=200 batch=65536 seed=1 indexes=flat,hnsw,roar efs=100,200,400,800 \
 *     hnsw=m=16;efConstruction=200;threads=2 roar=m=32
 * }</pre>
 *
 * Index options use {@code ;} between settings on the command line; an entry {@code
 * roar@trainQueries=0} of {@code indexes} runs one kind with its own options (here: no sample
 * queries, so a key-only graph).
 */
public final class RetrievalBenchmark {
    private RetrievalBenchmark() {}

    /** Softmax of {@code q·k/√d} over every key for test query {@code i} (slot = row). */
    private static float[] softmax(SyntheticAttention data, float[] queries, int i) {
        int d = data.d;
        double[] logits = new double[data.n];
        double max = Double.NEGATIVE_INFINITY;
        for (int x = 0; x < data.n; x++) {
            double s = 0;
            for (int j = 0; j < d; j++) {
                s += (double) queries[i * d + j] * data.keys[x * d + j];
            }
            logits[x] = s / Math.sqrt(d);
            max = Math.max(max, logits[x]);
        }
        double sum = 0;
        for (int x = 0; x < data.n; x++) {
            logits[x] = Math.exp(logits[x] - max);
            sum += logits[x];
        }
        float[] p = new float[data.n];
        for (int x = 0; x < data.n; x++) {
            p[x] = (float) (logits[x] / sum);
        }
        return p;
    }

    /** Runs the measurements; arguments are {@code name=value} as in the class comment. */
    public static void main(String[] args) {
        Map<String, String> a = new HashMap<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            a.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        int n = Integer.parseInt(a.getOrDefault("n", "65536"));
        int d = Integer.parseInt(a.getOrDefault("d", "128"));
        int k = Integer.parseInt(a.getOrDefault("k", "100"));
        int train = Integer.parseInt(a.getOrDefault("train", "2048"));
        int test = Integer.parseInt(a.getOrDefault("test", "200"));
        int batch = Integer.parseInt(a.getOrDefault("batch", String.valueOf(n)));
        long seed = Long.parseLong(a.getOrDefault("seed", "1"));
        String[] indexes = a.getOrDefault("indexes", "flat,hnsw,roar").split(",");
        String[] efs = a.getOrDefault("efs", "100,200,400,800").split(",");
        System.out.printf(
                Locale.ROOT,
                "seed=%d n=%d d=%d k=%d train=%d test=%d batch=%d cores=%d%n",
                seed,
                n,
                d,
                k,
                train,
                test,
                batch,
                Runtime.getRuntime().availableProcessors());

        SyntheticAttention data = new SyntheticAttention(n, d, seed);
        float[] trainQ = data.queries(train);
        float[] testQ = data.queries(test);
        long kvBytes = 4L * d * n;

        FlatKeyIndex exact = new FlatKeyIndex(d);
        exact.add(data.slots, data.keys, n);
        List<RoaringBitmap> truth = new ArrayList<>();
        long t0 = System.nanoTime();
        for (int i = 0; i < test; i++) {
            truth.add(exact.search(data.row(testQ, i), k).toBitmap());
        }
        double flatUs = (System.nanoTime() - t0) / 1e3 / test;
        // softmax probabilities of every key (slot = row here) per test query, and the exact top-k's mass
        float[][] prob = new float[test][];
        double[] topMass = new double[test];
        for (int i = 0; i < test; i++) {
            prob[i] = softmax(data, testQ, i);
            final float[] p = prob[i];
            topMass[i] = 0;
            for (int s : truth.get(i)) {
                topMass[i] += p[s];
            }
        }

        System.out.println(
                "index  options                          build_s  build_ms_per_1K  bytes/KV(f16 K+V)  graph_bytes/KV   ef  recall@k  min_recall  mass_recall  scanned_frac  us/query");
        for (String spec : indexes) {
            // name, or name@option;option to run one kind under several settings
            int at = spec.indexOf('@');
            String name = at < 0 ? spec : spec.substring(0, at);
            String opt = (at < 0 ? a.getOrDefault(name, "") : spec.substring(at + 1)).replace(';', ',');
            KeyIndexOptions options = KeyIndexOptions.parse(opt);
            try (KeyIndex index = KeyIndexes.create(name, d, options)) {
                index.observeQueries(trainQ, train);
                long b0 = System.nanoTime();
                int[] slots = new int[batch];
                float[] rows = new float[batch * d];
                for (int from = 0; from < n; from += batch) {
                    int c = Math.min(batch, n - from);
                    System.arraycopy(data.slots, from, slots, 0, c);
                    System.arraycopy(data.keys, from * d, rows, 0, c * d);
                    index.add(slots, rows, c);
                }
                double buildS = (System.nanoTime() - b0) / 1e9;
                long bytes = index.bytes();
                double overKv = (double) bytes / kvBytes;
                double graphOverKv = (double) (bytes - 4L * d * n) / kvBytes;
                String[] sweep = name.equals("flat") ? new String[] {String.valueOf(k)} : efs;
                for (String e : sweep) {
                    int ef = Integer.parseInt(e);
                    double recall = 0;
                    double minRecall = 1;
                    double scanned = 0;
                    double mass = 0;
                    long s0 = System.nanoTime();
                    for (int i = 0; i < test; i++) {
                        KeyHits h = index.search(data.row(testQ, i), k, ef);
                        double r = (double) RoaringBitmap.andCardinality(h.toBitmap(), truth.get(i)) / k;
                        recall += r;
                        minRecall = Math.min(minRecall, r);
                        scanned += h.scannedFraction();
                        double found = 0;
                        for (int j = 0; j < h.count(); j++) {
                            found += prob[i][h.slot(j)];
                        }
                        mass += found / topMass[i];
                    }
                    double us = (System.nanoTime() - s0) / 1e3 / test;
                    if (name.equals("flat")) {
                        us = flatUs;
                    }
                    System.out.printf(
                            Locale.ROOT,
                            "%-6s %-32s %7.2f  %15.1f  %17.3f  %14.3f %4d  %8.4f  %10.3f  %11.4f  %12.4f  %8.0f%n",
                            name,
                            options.toString().isEmpty() ? "-" : options.toString(),
                            buildS,
                            buildS * 1e3 / (n / 1024.0),
                            overKv,
                            graphOverKv,
                            ef,
                            recall / test,
                            minRecall,
                            mass / test,
                            scanned / test,
                            us);
                }
            }
        }
    }
}
