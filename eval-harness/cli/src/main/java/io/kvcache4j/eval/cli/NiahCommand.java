package io.kvcache4j.eval.cli;

import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.niah.Haystack;
import io.kvcache4j.eval.niah.Needle;
import io.kvcache4j.eval.niah.NiahMode;
import io.kvcache4j.eval.niah.NiahOptions;
import io.kvcache4j.eval.niah.NiahReport;
import io.kvcache4j.eval.niah.NiahResult;
import io.kvcache4j.eval.niah.NiahRunner;
import io.kvcache4j.eval.niah.TextCodec;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/** {@code bin/kvcache4j niah}: the needle-in-a-haystack evaluation and its report. */
final class NiahCommand implements Command {
    NiahCommand() {}

    @Override
    public String name() {
        return "niah";
    }

    @Override
    public String summary() {
        return "needle-in-a-haystack evaluation (see README: --policy --budget --lengths --depths --mode --out ...)";
    }

    @Override
    public int run(String[] argv, PrintStream out) throws Exception {
        Args a = new Args(
                argv,
                List.of(
                        "--model",
                        "--policy",
                        "--budget",
                        "--quant",
                        "--lengths",
                        "--depths",
                        "--haystack",
                        "--key",
                        "--value",
                        "--needle",
                        "--question",
                        "--answer",
                        "--answer-prefix",
                        "--mode",
                        "--seed",
                        "--out",
                        "--samples",
                        "--threads",
                        "--max-new-tokens"),
                List.of());
        Path modelPath = a.get("--model") == null ? ModelFiles.shippedModel() : ModelFiles.existing(a.get("--model"));
        List<String> policyNames = a.get("--policy") == null ? EvictionPolicies.names() : list(a.get("--policy"));
        List<Double> budgets = new ArrayList<>();
        for (String b : list(a.get("--budget", "0.1"))) {
            double value = parseDouble(b, "--budget");
            try {
                io.kvcache4j.api.Budget.of(value);
            } catch (IllegalArgumentException e) {
                throw new UsageException("--budget " + b + ": " + e.getMessage());
            }
            budgets.add(value);
        }
        List<String> quants = list(a.get("--quant", "none"));
        List<Integer> lengths = new ArrayList<>();
        for (String s : list(a.get("--lengths", "512,1024,2048,4096"))) {
            lengths.add(parseInt(s, "--lengths"));
        }
        List<Double> depths = parseDepths(a.get("--depths", "10"));
        List<NiahMode> modes = new ArrayList<>();
        for (String m : list(a.get("--mode", "query-agnostic"))) {
            try {
                modes.add(NiahMode.parse(m));
            } catch (IllegalArgumentException e) {
                throw new UsageException(e.getMessage());
            }
        }
        Needle custom = null;
        if (a.has("--needle") || a.has("--question") || a.has("--answer")) {
            if (!(a.has("--needle") && a.has("--question") && a.has("--answer"))) {
                throw new UsageException("--needle, --question and --answer go together");
            }
            if (a.has("--key") || a.has("--value")) {
                throw new UsageException(
                        "--key/--value fix the standard needle; they cannot be combined with --needle");
            }
            custom = Needle.custom(
                    a.get("--needle"), a.get("--question"), a.get("--answer"), a.get("--answer-prefix", ""));
        }
        if (a.has("--value") && !a.get("--value").matches("[1-9][0-9]{4,7}")) {
            throw new UsageException(
                    "--value must be 5 to 8 digits with a non-zero first digit, was '" + a.get("--value") + "'");
        }
        Path outDir = a.get("--out") != null
                ? Path.of(a.get("--out"))
                : Path.of(
                        "reports",
                        "niah-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        NiahOptions options;
        try {
            options = new NiahOptions(
                    policyNames,
                    budgets,
                    quants,
                    modes,
                    lengths,
                    depths,
                    a.has("--haystack") ? ModelFiles.existing(a.get("--haystack")) : null,
                    a.get("--key"),
                    a.get("--value"),
                    custom,
                    a.getInt("--samples", 1, 1, 1000),
                    a.getLong("--seed", 1),
                    a.getInt("--threads", Runtime.getRuntime().availableProcessors(), 1, 256),
                    a.getInt("--max-new-tokens", 16, 1, 1024),
                    outDir);
            NiahRunner.checkNames(options);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        ModelFiles.checkWritableDirectory(outDir, "--out");
        try (GgufLlama model = GgufLlama.open(modelPath)) {
            Tokenizer tok = Tokenizer.fromGguf(model.model());
            TextCodec codec = ModelFiles.codec(tok);
            Haystack hay =
                    options.haystack() == null ? Haystack.builtIn(codec) : Haystack.fromFile(options.haystack(), codec);
            NiahRunner runner = new NiahRunner(model, codec, hay);
            out.printf(
                    Locale.ROOT,
                    "NIAH: model %s, policies %s, budget %s, quant %s, modes %s, lengths %s, %d depths,"
                            + " %d sample(s), haystack %s, seed %d%n",
                    modelPath.getFileName(),
                    policyNames,
                    a.get("--budget", "0.1"),
                    quants,
                    a.get("--mode", "query-agnostic"),
                    lengths,
                    depths.size(),
                    options.samples(),
                    hay.name(),
                    options.seed());
            long t0 = System.nanoTime();
            List<NiahResult> results;
            try {
                results = runner.run(options, System.err);
            } catch (IllegalArgumentException e) {
                throw new UsageException(e.getMessage());
            }
            NiahReport.write(outDir, modelPath.getFileName().toString(), results);
            out.println();
            NiahReport.printSummary(results, out);
            out.printf(
                    Locale.ROOT,
                    "%nfinished in %.1f s; report: %s%n",
                    (System.nanoTime() - t0) / 1e9,
                    outDir.resolve("report.html").toAbsolutePath());
        }
        return 0;
    }

    static List<String> list(String s) {
        List<String> out = new ArrayList<>();
        for (String p : s.split(",")) {
            if (!p.isBlank()) {
                out.add(p.trim());
            }
        }
        if (out.isEmpty()) {
            throw new UsageException("empty list '" + s + "'");
        }
        return out;
    }

    /** Most depths one run evaluates (each is a cell per length, policy and sample). */
    static final int MAX_DEPTHS = 1001;

    static List<Double> parseDepths(String s) {
        if (!s.contains(",") && !s.contains(".")) {
            int n = parseInt(s, "--depths");
            if (n < 1 || n > MAX_DEPTHS) {
                throw new UsageException("--depths count must be in [1, " + MAX_DEPTHS + "], was " + n
                        + " (or give a list of fractions)");
            }
            return NiahOptions.evenDepths(n);
        }
        List<Double> out = new ArrayList<>();
        for (String p : list(s)) {
            double d = parseDouble(p, "--depths");
            if (!(d >= 0 && d <= 1)) {
                throw new UsageException("--depths fraction " + d + " out of range [0, 1]");
            }
            out.add(d);
        }
        return out;
    }

    static int parseInt(String s, String option) {
        try {
            return Integer.parseInt(s.trim());
        } catch (NumberFormatException e) {
            throw new UsageException(option + ": '" + s + "' is not an integer");
        }
    }

    static double parseDouble(String s, String option) {
        try {
            double d = Double.parseDouble(s.trim());
            if (Double.isNaN(d) || Double.isInfinite(d)) {
                throw new UsageException(option + " must be finite, was " + s);
            }
            return d;
        } catch (NumberFormatException e) {
            throw new UsageException(option + ": '" + s + "' is not a number");
        }
    }
}
