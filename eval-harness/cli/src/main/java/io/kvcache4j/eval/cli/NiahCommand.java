package io.kvcache4j.eval.cli;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.niah.Haystack;
import io.kvcache4j.eval.niah.Needle;
import io.kvcache4j.eval.niah.NiahMode;
import io.kvcache4j.eval.niah.NiahOptions;
import io.kvcache4j.eval.niah.NiahPrompt;
import io.kvcache4j.eval.niah.NiahReport;
import io.kvcache4j.eval.niah.NiahResult;
import io.kvcache4j.eval.niah.NiahRunner;
import io.kvcache4j.eval.niah.TextCodec;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bin/kvcache4j niah}: the needle-in-a-haystack evaluation and its report. Every option is
 * checked (names against what is installed, every budget against every length and policy, counts
 * against their limits, the haystack file read), and the report folder created and probed, before the
 * model is loaded.
 */
@Command(
        name = "niah",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        usageHelpWidth = 100,
        sortOptions = false,
        sortSynopsis = false,
        description = {
            "Needle-in-a-haystack evaluation of eviction policies on a model; writes results.json, results.csv,"
                    + " heatmaps and report.html.",
            "A run has at most " + NiahCommand.MAX_CELLS
                    + " cells (configurations x lengths x depths x samples; full runs once per quant and mode)."
        })
final class NiahCommand implements Callable<Integer> {
    /** Most depths one run evaluates (each is a cell per length, configuration and sample). */
    static final int MAX_DEPTHS = 1001;
    /** Shortest and longest prompt, in tokens. */
    static final int MIN_LENGTH = 64;

    static final int MAX_LENGTH = 1 << 20;
    /** Most prompt lengths and budgets in one run. */
    static final int MAX_LENGTHS = 64;

    static final int MAX_BUDGETS = 64;
    static final int MAX_SAMPLES = 1000;
    static final int MAX_THREADS = 256;
    static final int MAX_NEW_TOKENS = 1024;
    /** Most cells in one run: about a day of work on the development machine at 4K tokens. */
    static final long MAX_CELLS = 100_000;

    private final PrintStream out;
    private final PrintStream err;

    NiahCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Option(
            names = "--model",
            paramLabel = "FILE",
            description = "GGUF model (default: the shipped model/kvcache4j-niah.gguf).")
    Path model;

    @Option(
            names = "--policy",
            paramLabel = "LIST",
            split = ",",
            hideParamSyntax = true,
            converter = Converters.Policy.class,
            description = "Comma-separated eviction policies; installed: ${COMPLETION-CANDIDATES}"
                    + " (default: all of them).",
            completionCandidates = PolicyNames.class)
    List<String> policies;

    @Option(
            names = "--budget",
            paramLabel = "LIST",
            split = ",",
            hideParamSyntax = true,
            defaultValue = "0.1",
            converter = Converters.BudgetNumber.class,
            description = "Budgets: a fraction of the prompt in (0, 1) or whole tokens per (layer, KV head), each"
                    + " enough for " + Budget.DEFAULT_SINK_TOKENS + " sinks, the recent window and one more token at"
                    + " every length; at most " + MAX_BUDGETS + " (default: ${DEFAULT-VALUE}).")
    List<Double> budgets;

    @Option(
            names = "--quant",
            paramLabel = "LIST",
            split = ",",
            hideParamSyntax = true,
            defaultValue = "none",
            converter = Converters.Quant.class,
            completionCandidates = QuantNames.class,
            description = "KV storage kinds; installed: ${COMPLETION-CANDIDATES} (none: exact f16;"
                    + " default: ${DEFAULT-VALUE}).")
    List<String> quants;

    @Option(
            names = "--lengths",
            paramLabel = "LIST",
            split = ",",
            hideParamSyntax = true,
            defaultValue = "512,1024,2048,4096",
            converter = Converters.Length.class,
            description = "Prompt lengths in tokens, each in [" + MIN_LENGTH + ", " + MAX_LENGTH + "]; at most "
                    + MAX_LENGTHS + " (default: ${DEFAULT-VALUE}).")
    List<Integer> lengths;

    @Option(
            names = "--depths",
            paramLabel = "N|LIST",
            defaultValue = "10",
            converter = Converters.Depths.class,
            description = "N evenly spaced depths from 0 to 1 (N in [1, " + MAX_DEPTHS
                    + "]; 1 is 0.5), or a list of fractions in [0, 1] (default: ${DEFAULT-VALUE}).")
    Converters.DepthList depths;

    @Option(
            names = "--haystack",
            paramLabel = "FILE",
            description = "UTF-8 filler text of at least 8 sentences (default: the built-in text).")
    Path haystack;

    @Option(
            names = "--key",
            paramLabel = "TEXT",
            description = "Fixed KEY, words without digits (default: a random held-out KEY per cell).")
    String key;

    @Option(
            names = "--value",
            paramLabel = "DIGITS",
            description = "Fixed VALUE, 5 to 8 digits, first non-zero (default: random per cell).")
    String value;

    @Option(
            names = "--needle",
            paramLabel = "TEXT",
            description = "A needle of another form (with --question and --answer).")
    String needle;

    @Option(names = "--question", paramLabel = "TEXT", description = "The question asked for --needle.")
    String question;

    @Option(
            names = "--answer",
            paramLabel = "TEXT",
            description = "Text whose presence in the output makes a --needle cell correct.")
    String answer;

    @Option(
            names = "--answer-prefix",
            paramLabel = "TEXT",
            description = "Text after 'Answer:' for --needle (default: none).")
    String answerPrefix;

    @Option(
            names = "--mode",
            paramLabel = "LIST",
            split = ",",
            hideParamSyntax = true,
            defaultValue = "query-agnostic",
            converter = Converters.Mode.class,
            description = "query-agnostic (compress before the question is appended) and/or query-aware"
                    + " (default: ${DEFAULT-VALUE}).")
    List<NiahMode> modes;

    @Option(
            names = "--seed",
            paramLabel = "N",
            defaultValue = "1",
            converter = Converters.Seed.class,
            description = "Seed of every random choice (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--out", paramLabel = "DIR", description = "Report folder (default: reports/niah-<timestamp>).")
    Path outDir;

    @Option(
            names = "--samples",
            paramLabel = "N",
            defaultValue = "1",
            converter = Converters.Samples.class,
            description = "Prompts per (length, depth), in [1, " + MAX_SAMPLES + "] (default: ${DEFAULT-VALUE}).")
    int samples;

    @Option(
            names = "--threads",
            paramLabel = "N",
            converter = Converters.Threads.class,
            description = "Cells evaluated in parallel, in [1, " + MAX_THREADS + "] (default: the number of cores).")
    Integer threads;

    @Option(
            names = "--max-new-tokens",
            paramLabel = "N",
            defaultValue = "16",
            converter = Converters.NewTokens.class,
            description =
                    "Tokens generated per answer at most, in [1, " + MAX_NEW_TOKENS + "] (default: ${DEFAULT-VALUE}).")
    int maxNewTokens;

    /** The installed policy names, for the help text. */
    static final class PolicyNames implements Iterable<String> {
        @Override
        public java.util.Iterator<String> iterator() {
            return EvictionPolicies.names().iterator();
        }
    }

    /** The installed storage kinds, for the help text. */
    static final class QuantNames implements Iterable<String> {
        @Override
        public java.util.Iterator<String> iterator() {
            return NiahRunner.quantNames().iterator();
        }
    }

    @Override
    public Integer call() throws Exception {
        NiahOptions options = options();
        Path modelPath = ModelFiles.modelOrShipped(model);
        if (haystack != null) {
            checkHaystack(haystack);
        }
        List<Path> created = ModelFiles.writableDirectory("--out", options.out(), reportFiles());
        try {
            run(options, modelPath);
        } catch (Exception | Error e) {
            ModelFiles.removeIfEmpty(created);
            throw e;
        }
        return Main.EXIT_OK;
    }

    private void run(NiahOptions options, Path modelPath) throws Exception {
        try (GgufLlama llama = GgufLlama.open(modelPath)) {
            Tokenizer tok = Tokenizer.fromGguf(llama.model());
            TextCodec codec = ModelFiles.codec(tok);
            Haystack hay = haystack == null ? Haystack.builtIn(codec) : Haystack.fromFile(haystack, codec);
            checkFit(options, hay, codec);
            NiahRunner runner = new NiahRunner(llama, codec, hay);
            out.printf(
                    Locale.ROOT,
                    "NIAH: model %s, policies %s, budget %s, quant %s, modes %s, lengths %s, %d depths,"
                            + " %d sample(s), haystack %s, seed %d%n",
                    modelPath.getFileName(),
                    options.policies(),
                    budgetText(options.budgets()),
                    options.quants(),
                    String.join(
                            ",", options.modes().stream().map(NiahMode::label).toList()),
                    options.lengths(),
                    options.depths().size(),
                    options.samples(),
                    hay.name(),
                    options.seed());
            long t0 = System.nanoTime();
            List<NiahResult> results;
            try {
                results = runner.run(options, err);
            } catch (IllegalArgumentException e) {
                // A setting this model cannot run, e.g. a prompt length too short for the needle.
                throw new BadOption(null, e.getMessage());
            }
            NiahReport.write(options.out(), modelPath.getFileName().toString(), results)
                    .ifPresent(why -> err.println("kvcache4j niah: charts not drawn: " + why));
            out.println();
            NiahReport.printSummary(results, out);
            out.printf(
                    Locale.ROOT,
                    "%nfinished in %.1f s; report: %s%n",
                    (System.nanoTime() - t0) / 1e9,
                    options.out().resolve("report.html").toAbsolutePath());
        }
    }

    /** Every option checked, without touching the file system. */
    NiahOptions options() {
        List<String> policyNames = policies == null ? EvictionPolicies.names() : policies;
        unique("--policy", policyNames);
        unique("--budget", budgets);
        unique("--quant", quants);
        unique("--lengths", lengths);
        unique("--mode", modes);
        if (budgets.size() > MAX_BUDGETS) {
            throw new BadOption("--budget", "--budget: " + budgets.size() + " budgets; at most " + MAX_BUDGETS);
        }
        if (lengths.size() > MAX_LENGTHS) {
            throw new BadOption("--lengths", "--lengths: " + lengths.size() + " lengths; at most " + MAX_LENGTHS);
        }
        checkBudgets(policyNames);
        Needle custom = null;
        if (needle != null || question != null || answer != null || answerPrefix != null) {
            if (needle == null || question == null || answer == null) {
                String missing = needle == null ? "--needle" : question == null ? "--question" : "--answer";
                throw new BadOption(
                        missing,
                        missing + " is missing: --needle, --question and --answer go together"
                                + " (--answer-prefix needs them)");
            }
            if (key != null || value != null) {
                String fixed = key != null ? "--key" : "--value";
                throw new BadOption(fixed, fixed + " fixes the standard needle; it cannot be combined with --needle");
            }
            if (needle.isBlank() || answer.isBlank()) {
                String blank = needle.isBlank() ? "--needle" : "--answer";
                throw new BadOption(blank, blank + " must not be blank");
            }
            custom = Needle.custom(needle, question, answer, answerPrefix == null ? "" : answerPrefix);
        }
        if (value != null && !value.matches("[1-9][0-9]{4,7}")) {
            throw new BadOption(
                    "--value", "--value must be 5 to 8 digits with a non-zero first digit, was '" + value + "'");
        }
        if (key != null) {
            // The standard needle checks its KEY: words without digits.
            check("--key", "--key " + key + ": ", () -> Needle.standard(key, value != null ? value : "12345"));
        }
        long configurations = 0;
        for (String p : policyNames) {
            for (String q : quants) {
                configurations += p.equals("full") && !NiahRunner.sizedByBudget(q) ? 1 : budgets.size();
            }
        }
        long cells =
                configurations * modes.size() * lengths.size() * depths.depths().size() * samples;
        if (cells > MAX_CELLS) {
            throw new BadOption(
                    null,
                    "--policy, --budget, --quant, --mode, --lengths, --depths and --samples make " + cells
                            + " cells; at most " + MAX_CELLS + " allowed");
        }
        Path reportDir = outDir != null
                ? outDir
                : Path.of(
                        "reports",
                        "niah-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        int threadCount = threads != null
                ? threads
                : Math.min(MAX_THREADS, Runtime.getRuntime().availableProcessors());
        Needle customNeedle = custom;
        NiahOptions options = check(
                null,
                "",
                () -> new NiahOptions(
                        policyNames,
                        budgets,
                        quants,
                        modes,
                        lengths,
                        depths.depths(),
                        haystack,
                        key,
                        value,
                        customNeedle,
                        samples,
                        seed,
                        threadCount,
                        maxNewTokens,
                        reportDir));
        check(null, "", () -> {
            NiahRunner.checkNames(options);
            return null;
        });
        return options;
    }

    /**
     * Every budget resolved at every length and given to every policy and storage kind, as the run
     * will: a budget that is too small for a policy or a codec at some length fails here, naming them,
     * before the model is loaded.
     */
    private void checkBudgets(List<String> policyNames) {
        for (String q : quants) {
            try {
                NiahRunner.checkQuant(q);
            } catch (IllegalArgumentException e) {
                throw new BadOption("--quant", e.getMessage());
            }
        }
        for (String p : policyNames) {
            if (p.equals("full")) {
                continue;
            }
            for (double b : budgets) {
                Budget budget = Budget.of(b);
                for (int length : lengths) {
                    try {
                        EvictionPolicies.create(p, budget.resolve(length));
                    } catch (IllegalArgumentException e) {
                        throw new BadOption(
                                "--budget",
                                "--budget " + budget + " at length " + length + " for policy " + p + ": "
                                        + e.getMessage());
                    }
                    for (String q : quants) {
                        try {
                            io.kvcache4j.store.HeadStores.factory(
                                            q.equals("none") ? "f16" : q,
                                            io.kvcache4j.api.KvCacheBuilder.DEFAULT_PAGE_TOKENS)
                                    .checkBudget(budget.resolve(length));
                        } catch (IllegalArgumentException e) {
                            throw new BadOption(
                                    "--quant",
                                    "--quant " + q + " with --budget " + budget + " at length " + length
                                            + " for policy " + p + ": " + e.getMessage());
                        }
                    }
                }
            }
        }
    }

    /**
     * A needle that is known before the run (a custom one, or a fixed KEY) is placed at every depth in
     * a prompt of the shortest length, as the run will place it: a length too short for it fails here,
     * before the first cell.
     */
    private static void checkFit(NiahOptions o, Haystack hay, TextCodec codec) {
        Needle fixed = o.customNeedle() != null
                ? o.customNeedle()
                : o.key() != null ? Needle.standard(o.key(), o.value() != null ? o.value() : "99999999") : null;
        if (fixed == null) {
            return;
        }
        int shortest = o.lengths().stream().mapToInt(Integer::intValue).min().orElseThrow();
        for (double depth : o.depths()) {
            try {
                NiahPrompt.build(hay, codec, fixed, shortest, depth, new SplittableRandom(o.seed()));
            } catch (IllegalArgumentException e) {
                throw new BadOption("--lengths", "--lengths " + shortest + ": " + e.getMessage());
            }
        }
    }

    /** Reads the haystack as the run will (without tokenizing it): a missing file or too few sentences fail now. */
    private static void checkHaystack(Path file) {
        ModelFiles.readable("--haystack", file);
        TextCodec none = new TextCodec() {
            @Override
            public int[] encode(String text) {
                return new int[0];
            }

            @Override
            public String decode(int[] ids, int from, int to) {
                return "";
            }

            @Override
            public int bosId() {
                return -1;
            }

            @Override
            public int eosId() {
                return -1;
            }
        };
        try {
            Haystack.fromFile(file, none);
        } catch (IllegalArgumentException e) {
            throw new BadOption("--haystack", "--haystack " + file + ": " + e.getMessage());
        } catch (IOException e) {
            throw new BadOption("--haystack", "--haystack " + file + ": " + ModelFiles.describe(e));
        }
    }

    /** The files a report writes whose names do not depend on the results. */
    private static List<String> reportFiles() {
        return List.of("results.json", "results.csv", "accuracy-vs-bytes.png", "report.html");
    }

    private static <T> void unique(String option, List<T> values) {
        HashSet<T> seen = new HashSet<>();
        for (T v : values) {
            if (!seen.add(v)) {
                String text = v instanceof NiahMode m ? m.label() : v instanceof Double d ? budgetText(d) : v + "";
                throw new BadOption(option, option + ": " + text + " is listed twice");
            }
        }
    }

    private static <T> T check(String option, String prefix, Supplier<T> body) {
        try {
            return body.get();
        } catch (IllegalArgumentException e) {
            throw new BadOption(option, prefix + e.getMessage());
        }
    }

    private static String budgetText(double b) {
        return b < 1 ? String.valueOf(b) : String.valueOf((long) b);
    }

    private static String budgetText(List<Double> budgets) {
        List<String> out = new ArrayList<>();
        for (double b : budgets) {
            out.add(budgetText(b));
        }
        return String.join(",", out);
    }
}
