package io.kvcache4j.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.TypeConversionException;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * {@code bin/kvcache4j bench [--quick] [--out DIR] [--include REGEX]}: runs the JMH suite, writes
 * {@code DIR/jmh.json} (JMH's JSON), and prints derived figures: attention bytes/s against the read
 * bandwidth measured in the same run, our dot against Lucene's, and our attention against a naive
 * scalar loop. The options are checked (the regex compiled, the report folder created and probed)
 * before any benchmark runs; a bad one is one line on standard error and exit status 2.
 */
@Command(
        name = "kvcache4j bench",
        sortOptions = false,
        sortSynopsis = false,
        usageHelpWidth = 100,
        description = "Runs the JMH suite, writes DIR/jmh.json and prints the derived table.",
        footer = {"", "Against llama.cpp (needs node):", PeerBenchmark.USAGE})
public final class BenchMain implements Callable<Integer> {
    @Option(
            names = {"-h", "--help"},
            usageHelp = true,
            description = "Show this help message and exit.")
    boolean help;

    @Option(names = "--quick", description = "One configuration per target, short iterations (about 3 minutes).")
    boolean quick;

    @Option(names = "--out", paramLabel = "DIR", description = "Report folder (default: reports/bench-<timestamp>).")
    Path out;

    @Option(
            names = "--include",
            paramLabel = "REGEX",
            converter = Regex.class,
            description = "Only the benchmarks whose names match REGEX (JMH's include), with JMH's default settings.")
    String include;

    private BenchMain() {}

    public static void main(String[] args) throws Exception {
        if (List.of(args).contains("--peers")) {
            PeerBenchmark.main(args);
            return;
        }
        System.exit(run(args, System.out, System.err));
    }

    /** Runs one command line; returns the exit status (2 for a command line that cannot run). */
    static int run(String[] args, PrintStream stdout, PrintStream stderr) {
        CommandLine cli = new CommandLine(new BenchMain());
        cli.setExpandAtFiles(false);
        cli.setOut(new PrintWriter(stdout, true, StandardCharsets.UTF_8));
        cli.setErr(new PrintWriter(stderr, true, StandardCharsets.UTF_8));
        cli.setParameterExceptionHandler((ex, a) -> {
            String message =
                    ex.getCause() instanceof TypeConversionException t && ex.getArgSpec() instanceof OptionSpec o
                            ? o.longestName() + " " + ex.getValue() + ": " + t.getMessage()
                            : ex instanceof UnmatchedArgumentException u
                                            && !u.getUnmatched().isEmpty()
                                    ? "unknown option '" + u.getUnmatched().get(0)
                                            + "'; allowed: --quick, --out DIR, --include REGEX, --help"
                                    : ex.getMessage();
            stderr.println("kvcache4j bench: " + message.strip().replaceAll("\\s*\\R\\s*", "; "));
            return 2;
        });
        cli.setExecutionExceptionHandler((ex, c, parseResult) -> {
            if (ex instanceof BadOption) {
                stderr.println("kvcache4j bench: " + ex.getMessage());
                return 2;
            }
            throw ex;
        });
        return cli.execute(args);
    }

    /** A command line that cannot run; the message names the option, the value and what is wrong. */
    static final class BadOption extends RuntimeException {
        BadOption(String message) {
            super(message);
        }
    }

    /** A regular expression that compiles, as JMH's include takes it. */
    static final class Regex implements ITypeConverter<String> {
        @Override
        public String convert(String value) {
            try {
                Pattern.compile(value);
            } catch (PatternSyntaxException e) {
                throw new TypeConversionException(
                        "not a regular expression (" + e.getDescription() + " near index " + e.getIndex() + ")");
            }
            return value;
        }
    }

    @Override
    public Integer call() throws IOException, RunnerException {
        if (out == null) {
            out = Path.of(
                    "reports", "bench-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        }
        checkWritable(out);
        run(quick, out, include);
        return 0;
    }

    /** Creates {@code dir} and writes and removes a probe file in it, before hours of benchmarks. */
    static void checkWritable(Path dir) {
        if (dir.toString().isBlank()) {
            throw new BadOption("--out must not be empty");
        }
        try {
            Files.createDirectories(dir);
            Files.delete(Files.createTempFile(dir, ".write-probe", ".tmp"));
        } catch (IOException | SecurityException e) {
            String reason = e instanceof FileSystemException f && f.getReason() != null
                    ? f.getReason()
                    : e instanceof java.nio.file.FileAlreadyExistsException
                            ? "a file of that name exists"
                            : e instanceof java.nio.file.AccessDeniedException ? "permission denied" : "cannot write";
            throw new BadOption("--out " + dir + " is not a writable directory (" + reason + ")");
        }
    }

    /**
     * The least time one core spends on a token of the attention benchmarks (4 query heads, headDim
     * 128, scores and values: 1,024 multiply-adds) at {@code fmaNs} per FMA of {@code lanes} lanes.
     */
    static double fmaFloorNanosPerToken(double fmaNs, int lanes) {
        if (!(fmaNs > 0) || lanes < 1) {
            throw new IllegalArgumentException("fmaNs must be > 0 and lanes >= 1, were " + fmaNs + " and " + lanes);
        }
        return 4.0 * 128 * 2 / lanes * fmaNs;
    }

    /** Float lanes of the Vector API's preferred species (only with {@code jdk.incubator.vector} in the boot layer). */
    private static int preferredFloatLanes() {
        return jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
    }

    private static void run(boolean quick, Path out, String include) throws IOException, RunnerException {
        Path json = out.resolve("jmh.json");
        List<ChainedOptionsBuilder> runs = new ArrayList<>();
        String a = AttentionBenchmark.class.getName() + ".decode";
        if (include != null) {
            runs.add(new OptionsBuilder().include(include));
        } else if (!quick) {
            runs.add(new OptionsBuilder()
                    .include(a)
                    .include(MemoryBandwidthBenchmark.class.getName() + ".read")
                    .include(AttentionVsReadBenchmark.class.getName() + ".alternate")
                    .include(FmaThroughputBenchmark.class.getName() + ".fma")
                    .include(DotProductBenchmark.class.getName() + ".*")
                    .include(NaiveAttentionBenchmark.class.getName() + ".decode")
                    .include(JlamaAttentionBenchmark.class.getName() + ".decode")
                    .include(EngineBenchmark.class.getName() + ".*")
                    .include(EvictionBenchmark.class.getName() + ".*")
                    .include(TierDecodeBenchmark.class.getName() + ".decode")
                    .include(IndexBuildBenchmark.class.getName() + ".build")
                    .include(KeyScoringBenchmark.class.getName() + ".score"));
        } else {
            // One configuration per target, short iterations: about 3 minutes on 2 cores.
            // 1. Attention at 1M tokens against the read and FMA ceilings.
            runs.add(new OptionsBuilder()
                    .include(a)
                    .include(MemoryBandwidthBenchmark.class.getName() + ".read")
                    .include(AttentionVsReadBenchmark.class.getName() + ".alternate")
                    .include(FmaThroughputBenchmark.class.getName() + ".fma")
                    .param("tokens", "1048576")
                    .param("dtype", "f16", "f32")
                    .param("impl", "vector")
                    .param("threads", "1", "0")
                    .param("megabytes", "512"));
            // 2. Peers at 64K tokens: naive loop, Jlama, the scalar twin; Lucene's dot.
            runs.add(new OptionsBuilder()
                    .include(a)
                    .include(NaiveAttentionBenchmark.class.getName() + ".decode")
                    .include(JlamaAttentionBenchmark.class.getName() + ".decode")
                    .include(DotProductBenchmark.class.getName() + ".*")
                    .param("tokens", "65536")
                    .param("dtype", "f32", "f16")
                    .param("threads", "1")
                    .param("dims", "128"));
            // 3. The quantizing stores against f16, attention on their codes, 1M tokens.
            runs.add(new OptionsBuilder()
                    .include(a)
                    .param("tokens", "1048576")
                    .param("dtype", "f16", "int8", "int4", "int2", "1bit")
                    .param("impl", "vector")
                    .param("threads", "1", "0"));
            // 4. Eviction bookkeeping and the engine.
            runs.add(new OptionsBuilder()
                    .include(EvictionBenchmark.class.getName() + ".*")
                    .include(EngineBenchmark.class.getName() + ".*"));
        }
        List<RunResult> results = new ArrayList<>();
        StringBuilder combined = new StringBuilder();
        for (int i = 0; i < runs.size(); i++) {
            Path part = out.resolve("jmh-part" + i + ".json");
            ChainedOptionsBuilder opts = runs.get(i)
                    .resultFormat(ResultFormatType.JSON)
                    .result(part.toString())
                    .shouldFailOnError(true);
            if (quick) {
                opts.warmupIterations(2)
                        .warmupTime(TimeValue.seconds(1))
                        .measurementIterations(3)
                        .measurementTime(TimeValue.seconds(1));
            }
            results.addAll(new Runner(opts.build()).run());
            // Concatenate the runs' JSON arrays into one JMH result file.
            String text = Files.readString(part).trim();
            String body = text.substring(1, text.length() - 1).trim();
            if (!body.isEmpty()) {
                combined.append(combined.isEmpty() ? "" : ",\n").append(body);
            }
            Files.delete(part);
        }
        Files.writeString(json, "[\n" + combined + "\n]\n");
        report(results, System.out);
        System.out.println("JMH results: " + json.toAbsolutePath());
    }

    /** Prints the derived table. */
    static void report(Collection<RunResult> results, PrintStream out) {
        Map<String, Double> bandwidthByThreads = new TreeMap<>();
        Map<String, Double> attentionUs = new TreeMap<>();
        Map<String, Double> naiveUs = new TreeMap<>();
        Map<String, Double> jlamaUs = new TreeMap<>();
        Map<String, Double> policyStepUs = new TreeMap<>();
        Map<String, Double> policyStepRatio = new TreeMap<>();
        Double attentionOnlyUs = null;
        Double fmaNs = null;
        Map<String, Double> engineMs = new TreeMap<>();
        Map<String, Double> dotNs = new TreeMap<>();
        Map<String, Double> alternatedRatio = new TreeMap<>();
        List<String[]> rows = new ArrayList<>();
        for (RunResult r : results) {
            var params = r.getParams();
            String bench = params.getBenchmark();
            String simple = bench.substring(bench.lastIndexOf('.', bench.lastIndexOf('.') - 1) + 1);
            double score = r.getPrimaryResult().getScore();
            String unit = r.getPrimaryResult().getScoreUnit();
            switch (simple) {
                case "MemoryBandwidthBenchmark.read" -> {
                    double mb = Double.parseDouble(params.getParam("megabytes"));
                    double mbs = mb / (toMicros(score, unit) * 1e-6);
                    String threads = params.getParam("threads");
                    if (!bandwidthByThreads.containsKey(threads) || mb >= 512) {
                        bandwidthByThreads.put(threads, mbs);
                    }
                    rows.add(new String[] {
                        simple,
                        "megabytes=" + (int) mb + " threads=" + threadsText(threads),
                        fmt(score) + " " + unit,
                        fmt(mbs / 1024) + " GiB/s"
                    });
                }
                case "AttentionBenchmark.decode" -> {
                    String key = params.getParam("tokens") + "/" + params.getParam("dtype") + "/"
                            + params.getParam("impl") + "/" + params.getParam("threads");
                    attentionUs.put(key, toMicros(score, unit));
                }
                case "NaiveAttentionBenchmark.decode" -> naiveUs.put(params.getParam("tokens"), toMicros(score, unit));
                case "JlamaAttentionBenchmark.decode" -> jlamaUs.put(params.getParam("tokens"), toMicros(score, unit));
                case "EvictionBenchmark.decodeStep" ->
                    policyStepUs.put(params.getParam("policy"), toMicros(score, unit));
                case "EvictionBenchmark.attentionOnly" -> attentionOnlyUs = toMicros(score, unit);
                case "EvictionBenchmark.interleaved" -> {
                    Double ratio = counterRatio(r.getSecondaryResults(), "decodeNs", "attentionNs");
                    if (ratio != null) {
                        policyStepRatio.put(params.getParam("policy"), ratio);
                    }
                }
                case "AttentionVsReadBenchmark.alternate" -> {
                    Double ratio = counterRatio(r.getSecondaryResults(), "readNs", "attentionNs");
                    if (ratio != null) {
                        alternatedRatio.put(
                                params.getParam("tokens") + "/" + params.getParam("pageTokens") + "/"
                                        + params.getParam("threads"),
                                ratio);
                    }
                }
                case "FmaThroughputBenchmark.fma" -> {
                    fmaNs = toMicros(score, unit) * 1000;
                    rows.add(new String[] {simple, "", fmt(score) + " " + unit, "per vector FMA"});
                }
                case "EngineBenchmark.prefill", "EngineBenchmark.decode" ->
                    engineMs.put(
                            simple + "/" + params.getParam("promptTokens") + "/" + params.getParam("attentionPool"),
                            toMicros(score, unit) / 1000);
                case "DotProductBenchmark.kvcache4j", "DotProductBenchmark.lucene" ->
                    dotNs.put(simple + "/" + params.getParam("dims"), toMicros(score, unit) * 1000);
                default -> rows.add(new String[] {simple, params.toString(), fmt(score) + " " + unit, ""});
            }
        }
        out.println();
        out.println("== Attention, one decode step, one KV head (headDim 128, 4 query heads) ==");
        out.printf(
                Locale.ROOT,
                "%-10s %-5s %-7s %-8s %12s %12s %22s %14s%n",
                "tokens",
                "dtype",
                "impl",
                "threads",
                "us/op",
                "GB/s",
                "x read bw (same thr.)",
                "f16 time / this");
        for (var e : attentionUs.entrySet()) {
            String[] k = e.getKey().split("/");
            long tokens = Long.parseLong(k[0]);
            int bytes = switch (k[1]) {
                case "f32" -> 4;
                case "f16", "bf16" -> 2;
                default -> 0; // a codec: its bytes per token depend on its layout; compare times with f16
            };
            Double bw = bandwidthByThreads.get(k[3]);
            String gbsText = "n/a";
            String ratio = "n/a";
            if (bytes > 0) {
                double gbs = tokens * 128.0 * 2 * bytes / (e.getValue() * 1e-6) / 1e9;
                gbsText = fmt(gbs);
                ratio = bw == null ? "n/a" : fmt(gbs * 1e9 / (bw * 1024 * 1024));
            }
            Double f16 = attentionUs.get(k[0] + "/f16/" + k[2] + "/" + k[3]);
            out.printf(
                    Locale.ROOT,
                    "%-10s %-5s %-7s %-8s %12s %12s %22s %14s%n",
                    k[0],
                    k[1],
                    k[2],
                    threadsText(k[3]),
                    fmt(e.getValue()),
                    gbsText,
                    ratio,
                    f16 == null ? "n/a" : fmt(f16 / e.getValue()));
        }
        for (var e : bandwidthByThreads.entrySet()) {
            out.printf(
                    Locale.ROOT,
                    "read bandwidth (MemoryBandwidthBenchmark, largest buffer, %s threads): %s GB/s%n",
                    threadsText(e.getKey()),
                    fmt(e.getValue() * 1024 * 1024 / 1e9));
        }
        for (var e : alternatedRatio.entrySet()) {
            String[] k = e.getKey().split("/");
            out.println(alternatedLine(k[0], k[1], k[2], e.getValue()));
        }
        if (fmaNs != null
                && ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()) {
            // 4 query heads × headDim 128 × (scores + values) multiply-adds per token, in vectors of
            // the preferred width (the benchmark's forks use it too): the least time one core can
            // spend on an f16 or f32 token.
            int lanes = preferredFloatLanes();
            double perToken = fmaFloorNanosPerToken(fmaNs, lanes);
            out.printf(
                    Locale.ROOT,
                    "FMA ceiling (FmaThroughputBenchmark, 1 thread): %s ns per %d-lane FMA, at least %s ns per token%n",
                    fmt(fmaNs),
                    lanes,
                    fmt(perToken));
            for (var e : attentionUs.entrySet()) {
                String[] k = e.getKey().split("/");
                if (k[3].equals("1") && (k[1].equals("f16") || k[1].equals("f32"))) {
                    double floorUs = Long.parseLong(k[0]) * perToken / 1000;
                    out.printf(
                            Locale.ROOT,
                            "  %s tokens %s %s, 1 thread: %s x the FMA ceiling%n",
                            k[0],
                            k[1],
                            k[2],
                            fmt(floorUs / e.getValue()));
                }
            }
        }
        if (!naiveUs.isEmpty()) {
            out.println();
            out.println("== Against a naive scalar attention loop (llama3.java's shape), f32 ==");
            for (var e : naiveUs.entrySet()) {
                Double ours = attentionUs.get(e.getKey() + "/f32/vector/1");
                out.printf(
                        Locale.ROOT,
                        "tokens %-9s naive %12s us   kvcache4j %12s us   speedup %s%n",
                        e.getKey(),
                        fmt(e.getValue()),
                        ours == null ? "n/a" : fmt(ours),
                        ours == null ? "n/a" : fmt(e.getValue() / ours) + "x");
            }
        }
        if (!jlamaUs.isEmpty()) {
            out.println();
            out.println("== Against Jlama 0.8.4's attention path (batchDotProduct, softMax, saxpy), f32 ==");
            for (var e : jlamaUs.entrySet()) {
                Double ours = attentionUs.get(e.getKey() + "/f32/vector/1");
                out.printf(
                        Locale.ROOT,
                        "tokens %-9s jlama %12s us   kvcache4j %12s us   speedup %s%n",
                        e.getKey(),
                        fmt(e.getValue()),
                        ours == null ? "n/a" : fmt(ours),
                        ours == null ? "n/a" : fmt(e.getValue() / ours) + "x");
            }
        }
        if (!policyStepUs.isEmpty()) {
            out.println();
            out.println("== Eviction bookkeeping: one decode step (attention + policy) at 32K positions, budget 2K,"
                    + " against the attention of the same step over 2K tokens ==");
            for (var e : policyStepUs.entrySet()) {
                String over = attentionOnlyUs == null
                        ? "n/a"
                        : fmt(100 * (e.getValue() - attentionOnlyUs) / attentionOnlyUs) + "% of attention";
                out.printf(
                        Locale.ROOT,
                        "%-13s step %10s us   attention alone %10s us   bookkeeping %s%n",
                        e.getKey(),
                        fmt(e.getValue()),
                        attentionOnlyUs == null ? "n/a" : fmt(attentionOnlyUs),
                        over);
            }
        }
        if (!policyStepRatio.isEmpty()) {
            out.println();
            out.println("== The same, interleaved: runs of decode steps and of attention-alone steps taken alternately,"
                    + " so both see the same machine ==");
            for (var e : policyStepRatio.entrySet()) {
                out.printf(
                        Locale.ROOT,
                        "%-13s step / attention alone %8s   bookkeeping %s%% of attention%n",
                        e.getKey(),
                        fmt(e.getValue()),
                        fmt(100 * (e.getValue() - 1)));
            }
        }
        if (!engineMs.isEmpty()) {
            out.println();
            out.println("== Reference engine, random Llama (4 layers, d 512, GQA 8/2, F16 weights), full f16 cache ==");
            for (var e : engineMs.entrySet()) {
                String[] k = e.getKey().split("/");
                double tps =
                        k[0].endsWith("prefill") ? Integer.parseInt(k[1]) / (e.getValue() / 1000) : 1000 / e.getValue();
                out.printf(
                        Locale.ROOT,
                        "%-24s prompt %s, attention pool %-5s: %10s ms/op  %10s tokens/s%n",
                        k[0],
                        k[1],
                        k[2],
                        fmt(e.getValue()),
                        fmt(tps));
            }
        }
        if (!dotNs.isEmpty()) {
            out.println();
            out.println("== Dot product against Lucene VectorUtil.dotProduct (same arrays) ==");
            for (var e : dotNs.entrySet()) {
                if (!e.getKey().startsWith("DotProductBenchmark.kvcache4j/")) {
                    continue;
                }
                String dims = e.getKey().substring(e.getKey().indexOf('/') + 1);
                Double lucene = dotNs.get("DotProductBenchmark.lucene/" + dims);
                out.printf(
                        Locale.ROOT,
                        "dims %-6s kvcache4j %10s ns   lucene %10s ns   lucene/kvcache4j time %s%n",
                        dims,
                        fmt(e.getValue()),
                        lucene == null ? "n/a" : fmt(lucene),
                        lucene == null ? "n/a" : fmt(lucene / e.getValue()));
            }
        }
        if (!rows.isEmpty()) {
            out.println();
            out.println("== Other results ==");
            for (String[] row : rows) {
                out.printf(Locale.ROOT, "%-40s %-40s %16s %s%n", (Object[]) row);
            }
        }
    }

    /** {@code 0} (every core) written out with the core count. */
    /**
     * {@code numerator / denominator} of two of a benchmark's {@code @AuxCounters}, or null when
     * either is missing or the denominator is not positive.
     */
    @SuppressWarnings("rawtypes") // RunResult.getSecondaryResults() hands out raw Results
    static Double counterRatio(
            Map<String, ? extends org.openjdk.jmh.results.Result> counters, String numerator, String denominator) {
        if (!counters.containsKey(numerator) || !counters.containsKey(denominator)) {
            return null;
        }
        double d = counters.get(denominator).getScore();
        return d > 0 ? counters.get(numerator).getScore() / d : null;
    }

    /** The report line of {@link AttentionVsReadBenchmark}: its read / attention ratio for one configuration. */
    static String alternatedLine(String tokens, String pageTokens, String threads, double ratio) {
        return String.format(
                Locale.ROOT,
                "f16 attention, %s tokens, %s-token pages, %s threads, alternated with a read of the same bytes"
                        + " in one fork (AttentionVsReadBenchmark): %s x the read ceiling",
                tokens,
                pageTokens.equals("0")
                        ? String.valueOf(io.kvcache4j.api.KvCacheBuilder.FULL_CACHE_PAGE_TOKENS)
                        : pageTokens,
                threadsText(threads),
                fmt(ratio));
    }

    static String threadsText(String threads) {
        return threads.equals("0") ? "all(" + Runtime.getRuntime().availableProcessors() + ")" : threads;
    }

    static double toMicros(double score, String unit) {
        return switch (unit) {
            case "ns/op" -> score / 1000;
            case "us/op" -> score;
            case "ms/op" -> score * 1000;
            case "s/op" -> score * 1e6;
            default -> throw new IllegalStateException("unexpected JMH unit " + unit);
        };
    }

    static String fmt(double x) {
        if (Math.abs(x) >= 100) {
            return String.format(Locale.ROOT, "%.0f", x);
        }
        if (Math.abs(x) >= 1) {
            return String.format(Locale.ROOT, "%.2f", x);
        }
        return String.format(Locale.ROOT, "%.4f", x);
    }
}
