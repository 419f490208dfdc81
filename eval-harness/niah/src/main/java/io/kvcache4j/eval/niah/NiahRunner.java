package io.kvcache4j.eval.niah;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.eval.llama.Generation;
import io.kvcache4j.eval.llama.LlamaEngine;
import io.kvcache4j.eval.llama.LlamaWeights;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStores;
import io.kvcache4j.store.PagedHeadStore;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Runs the needle-in-a-haystack grid: every configuration (policy × quant × mode) over lengths ×
 * depths × samples, each cell a fresh cache built with that configuration, the prompt run through the
 * reference engine, the answer generated greedily and scored by exact containment of VALUE.
 *
 * <p>Every random choice (haystack start, KEY, VALUE) derives from the seed and the cell's
 * coordinates only, so results are identical for a seed whatever the thread count.
 */
public final class NiahRunner {
    /** Resource with the KEY words the shipped model never saw as KEYs in training. */
    public static final String KEYS_RESOURCE = "/io/kvcache4j/eval/niah-keys.txt";

    private final LlamaWeights weights;
    private final TextCodec codec;
    private final Haystack haystack;
    private final List<String> keyWords;

    public NiahRunner(LlamaWeights weights, TextCodec codec, Haystack haystack) throws IOException {
        this.weights = weights;
        this.codec = codec;
        this.haystack = haystack;
        this.keyWords = loadKeyWords();
    }

    static List<String> loadKeyWords() throws IOException {
        try (InputStream in = NiahRunner.class.getResourceAsStream(KEYS_RESOURCE)) {
            if (in == null) {
                throw new IOException("KEY word list " + KEYS_RESOURCE + " missing from the class path");
            }
            List<String> words = new ArrayList<>();
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                String w = line.trim();
                if (!w.isEmpty() && !w.startsWith("#")) {
                    words.add(w);
                }
            }
            return words;
        }
    }

    private record Cell(
            String policy, double budget, String quant, NiahMode mode, int length, double depth, int sample) {}

    /** Runs the whole grid; {@code progress} receives a progress line per finished cell. */
    public List<NiahResult> run(NiahOptions o, PrintStream progress) throws Exception {
        checkNames(o);
        List<Cell> cells = new ArrayList<>();
        for (String p : o.policies()) {
            for (String q : o.quants()) {
                // The full cache has no budget: it runs once, whatever the budget list, unless its
                // storage is sized by the budget (the fast tier of tiered storage).
                List<Double> budgets = p.equals("full") && !sizedByBudget(q) ? List.of(1.0) : o.budgets();
                for (double b : budgets) {
                    for (NiahMode m : o.modes()) {
                        for (int len : o.lengths()) {
                            for (double d : o.depths()) {
                                for (int s = 0; s < o.samples(); s++) {
                                    cells.add(new Cell(p, b, q, m, len, d, s));
                                }
                            }
                        }
                    }
                }
            }
        }
        // Fail early on impossible budgets, before hours of work.
        for (Cell c : cells) {
            policy(c);
        }
        NiahResult[] results = new NiahResult[cells.size()];
        Progress bar = new Progress(progress, cells.size());
        ExecutorService pool = Executors.newFixedThreadPool(o.threads());
        try {
            ThreadLocal<LlamaEngine> engines = ThreadLocal.withInitial(() -> new LlamaEngine(weights, 256));
            List<Future<?>> futures = new ArrayList<>();
            AtomicInteger done = new AtomicInteger();
            for (int i = 0; i < cells.size(); i++) {
                final int idx = i;
                futures.add(pool.submit(() -> {
                    NiahResult r = runCell(engines.get(), cells.get(idx), o);
                    results[idx] = r;
                    bar.update(done.incrementAndGet(), r);
                    return null;
                }));
            }
            for (Future<?> f : futures) {
                f.get();
            }
        } finally {
            pool.shutdownNow();
        }
        bar.finish();
        return Arrays.asList(results);
    }

    private NiahResult runCell(LlamaEngine engine, Cell cell, NiahOptions o) {
        long start = System.nanoTime();
        // The cell's randomness depends on (seed, length, depth, sample) only: every policy sees the
        // same prompts.
        long cellSeed =
                o.seed() * 1_000_003L + cell.length() * 7919L + Math.round(cell.depth() * 10_000) * 31L + cell.sample();
        SplittableRandom r = new SplittableRandom(cellSeed);
        String key = o.key() != null ? o.key() : randomKey(r);
        String value = o.value() != null ? o.value() : randomValue(r);
        Needle needle = o.customNeedle() != null ? o.customNeedle() : Needle.standard(key, value);
        NiahPrompt prompt = NiahPrompt.build(haystack, codec, needle, cell.length(), cell.depth(), r);
        ModelShape shape = weights.config().cacheShape();
        int budgetTokens = budgetTokens(cell);
        EvictionPolicy policy = policy(cell);
        StringBuilder out = new StringBuilder();
        long retained;
        int fed;
        KvCacheBuilder builder = KvCache.builder(shape).store(storage(cell)).policy(policy);
        if (o.threads() == 1) {
            // Cells run one at a time: a cell's attention takes every core. With several cells in
            // parallel the cores are already busy and each cell attends on its own thread.
            builder.attentionPool(io.kvcache4j.eval.llama.Parallel.attentionPool());
        }
        try (KvCache cache = builder.build()) {
            float[] logits;
            if (cell.mode() == NiahMode.QUERY_AGNOSTIC) {
                engine.forward(prompt.context(), 0, prompt.context().length, cache);
                cache.endPrefill();
                logits = engine.forward(prompt.question(), 0, prompt.question().length, cache);
            } else {
                int[] all = prompt.all();
                logits = engine.forward(all, 0, all.length, cache);
                cache.endPrefill();
            }
            int[] generated = new int[o.maxNewTokens()];
            Generation.Result g = Generation.run(
                    engine,
                    cache,
                    logits,
                    LlamaEngine::argmax,
                    t -> t == codec.eosId(),
                    (t, gen, n) -> {
                        String text = codec.decode(gen, 0, n);
                        if (n >= gen.length || finished(text)) {
                            out.append(text);
                            return true;
                        }
                        return false;
                    },
                    generated);
            int n = g.tokens();
            fed = prompt.length() + g.fed();
            if (out.isEmpty() && n > 0) {
                out.append(codec.decode(generated, 0, n));
            }
            retained = cache.bytesHeld();
        }
        long full = (long) shape.layers()
                * shape.kvHeads()
                * PagedHeadStore.bytesFor(KvDType.F16, shape.headDim(), KvCacheBuilder.DEFAULT_PAGE_TOKENS, fed);
        String output = out.toString();
        return new NiahResult(
                cell.policy(),
                cell.budget(),
                budgetTokens,
                cell.quant(),
                cell.mode().label(),
                cell.length(),
                cell.depth(),
                prompt.depth(),
                cell.sample(),
                o.customNeedle() != null ? "" : key,
                needle.answer(),
                output.contains(needle.answer()),
                output,
                retained,
                full,
                (System.nanoTime() - start) / 1_000_000);
    }

    /** The cell's budget in tokens; the full cache's "budget" is the whole prompt. */
    private static int budgetTokens(Cell cell) {
        return cell.policy().equals("full") && !sizedByBudget(cell.quant())
                ? cell.length()
                : NiahOptions.budgetTokens(cell.budget(), cell.length());
    }

    /** The cell's policy, from the registry, for its budget resolved against the prompt length. */
    private static EvictionPolicy policy(Cell cell) {
        Budget budget = cell.policy().equals("full")
                ? Budget.tokens(cell.length())
                : Budget.of(cell.budget()).resolve(cell.length());
        return EvictionPolicies.create(cell.policy(), budget);
    }

    /** Storage names {@code --quant} accepts: {@code none} (exact f16) and every installed kind. */
    public static List<String> quantNames() {
        List<String> names = new ArrayList<>();
        names.add("none");
        names.addAll(HeadStores.names());
        return names;
    }

    /**
     * Throws unless {@code quant} names {@code none}, an installed storage kind, or one with options
     * ({@code int4:g=64:r=0}, see {@link HeadStores#provider}); the message names the value and what
     * is installed or allowed.
     */
    public static void checkQuant(String quant) {
        if (quant.equals("none")) {
            return;
        }
        if (!quantNames().contains(quant) && quant.indexOf(':') < 0) {
            throw new IllegalArgumentException(
                    "unknown --quant '" + quant + "'; installed: " + String.join(", ", quantNames()));
        }
        try {
            // a storage that cannot run here (cuda-f16 or hgca-cuda without a GPU) refuses now, naming why
            HeadStores.provider(quant).factory(KvCacheBuilder.DEFAULT_PAGE_TOKENS);
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw new IllegalArgumentException("--quant " + quant + ": " + e.getMessage(), e);
        }
    }

    private static HeadStoreFactory storage(Cell cell) {
        String name = cell.quant().equals("none") ? "f16" : cell.quant();
        if (sizedByBudget(cell.quant())) {
            return HeadStores.provider(name)
                    .factory(KvCacheBuilder.DEFAULT_PAGE_TOKENS, Budget.of(cell.budget()), cell.length());
        }
        return HeadStores.factory(name, KvCacheBuilder.DEFAULT_PAGE_TOKENS);
    }

    /**
     * Whether storage {@code quant} is sized by the budget itself (tiered storage: the budget is its
     * fast tier), so that it runs with {@code full} once per budget.
     */
    public static boolean sizedByBudget(String quant) {
        return !quant.equals("none") && HeadStores.provider(quant).sizedByBudget();
    }

    /** Every policy and quant name must be installed. */
    public static void checkNames(NiahOptions o) {
        for (String q : o.quants()) {
            checkQuant(q);
        }
        for (String p : o.policies()) {
            if (!EvictionPolicies.names().contains(p)) {
                throw new IllegalArgumentException(
                        "unknown --policy '" + p + "'; installed: " + String.join(", ", EvictionPolicies.names()));
            }
        }
        for (String q : o.quants()) {
            if (sizedByBudget(q)) {
                for (String p : o.policies()) {
                    if (!p.equals("full")) {
                        throw new IllegalArgumentException("--quant " + q + " is sized by --budget (its fast tier) and"
                                + " runs with --policy full only, not with " + p);
                    }
                }
            }
        }
    }

    /** An answer ends at a newline, or at a period after at least one digit. */
    static boolean finished(String text) {
        if (text.indexOf('\n') >= 0) {
            return true;
        }
        int dot = text.lastIndexOf('.');
        return dot > 0 && Character.isDigit(text.charAt(dot - 1));
    }

    String randomKey(SplittableRandom r) {
        double u = r.nextDouble();
        int words = u < 0.5 ? 1 : u < 0.83 ? 2 : 3;
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < words; i++) {
            String w = keyWords.get(r.nextInt(keyWords.size()));
            double c = r.nextDouble();
            if (c < 0.6) {
                // lower case as listed
            } else if (c < 0.92) {
                w = Character.toUpperCase(w.charAt(0)) + w.substring(1);
            } else {
                w = w.toUpperCase(Locale.ROOT);
            }
            if (i > 0) {
                b.append(' ');
            }
            b.append(w);
        }
        return b.toString();
    }

    static String randomValue(SplittableRandom r) {
        int digits = 5 + r.nextInt(4);
        StringBuilder b = new StringBuilder().append((char) ('1' + r.nextInt(9)));
        for (int i = 1; i < digits; i++) {
            b.append((char) ('0' + r.nextInt(10)));
        }
        return b.toString();
    }

    /** A one-line progress bar, redrawn in place on a terminal. */
    private static final class Progress {
        private final PrintStream out;
        private final int total;
        private final long start = System.nanoTime();
        private final boolean tty = System.console() != null;
        private int correct;
        private int lastPercent = -1;

        Progress(PrintStream out, int total) {
            this.out = out;
            this.total = total;
        }

        synchronized void update(int done, NiahResult r) {
            if (r.correct()) {
                correct++;
            }
            double elapsed = (System.nanoTime() - start) / 1e9;
            double eta = elapsed / done * (total - done);
            int width = 30;
            int filled = (int) ((long) width * done / total);
            String line = String.format(
                    Locale.ROOT,
                    "[%s%s] %d/%d cells, %d correct, %.0fs elapsed, ~%.0fs left  (%s L=%d d=%.2f %s)",
                    "#".repeat(filled),
                    ".".repeat(width - filled),
                    done,
                    total,
                    correct,
                    elapsed,
                    eta,
                    r.policy(),
                    r.length(),
                    r.depth(),
                    r.correct() ? "ok" : "miss");
            int percent = 100 * done / total;
            if (tty) {
                out.print("\r" + line);
            } else if (percent / 10 != lastPercent / 10 || done == total) {
                out.println(line);
            }
            lastPercent = percent;
            out.flush();
        }

        void finish() {
            if (tty) {
                out.println();
            }
        }
    }
}
