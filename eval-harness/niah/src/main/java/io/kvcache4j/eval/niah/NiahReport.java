package io.kvcache4j.eval.niah;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;

/**
 * Writes a NIAH run's report: {@code results.json} (the contract: {@code {"model", "runs": [...]}}),
 * {@code results.csv}, one {@code heatmap-<configuration>.png} per configuration (length × depth,
 * coloured by accuracy), {@code accuracy-vs-bytes.png} (both drawn by {@link NiahCharts}), and
 * {@code report.html} with all of them and the summary table.
 */
public final class NiahReport {
    private NiahReport() {}

    /** Per-configuration summary. */
    public record Summary(
            String configuration, int cells, int correct, double meanBytesRetained, double meanBytesFull, long millis) {
        public double accuracy() {
            return cells == 0 ? 0 : correct / (double) cells;
        }

        public double keptFraction() {
            return meanBytesFull == 0 ? 0 : meanBytesRetained / meanBytesFull;
        }
    }

    public static List<Summary> summarize(List<NiahResult> results) {
        Map<String, List<NiahResult>> by = group(results);
        List<Summary> out = new ArrayList<>();
        for (var e : by.entrySet()) {
            int correct = 0;
            double kept = 0;
            double full = 0;
            long millis = 0;
            for (NiahResult r : e.getValue()) {
                correct += r.correct() ? 1 : 0;
                kept += r.kvBytesRetained();
                full += r.kvBytesFull();
                millis += r.millis();
            }
            int n = e.getValue().size();
            out.add(new Summary(e.getKey(), n, correct, kept / n, full / n, millis));
        }
        return out;
    }

    static Map<String, List<NiahResult>> group(List<NiahResult> results) {
        Map<String, List<NiahResult>> by = new LinkedHashMap<>();
        for (NiahResult r : results) {
            by.computeIfAbsent(r.configuration(), k -> new ArrayList<>()).add(r);
        }
        return by;
    }

    public static void printSummary(List<NiahResult> results, PrintStream out) {
        out.printf(
                Locale.ROOT,
                "%-40s %9s %10s %14s %8s %9s%n",
                "configuration",
                "accuracy",
                "correct",
                "KV bytes kept",
                "of full",
                "time");
        for (Summary s : summarize(results)) {
            out.printf(
                    Locale.ROOT,
                    "%-40s %8.1f%% %10s %14.0f %7.1f%% %8.1fs%n",
                    s.configuration(),
                    100 * s.accuracy(),
                    s.correct() + "/" + s.cells(),
                    s.meanBytesRetained(),
                    100 * s.keptFraction(),
                    s.millis() / 1000.0);
        }
    }

    /**
     * Writes the report into {@code dir}. The charts need the java.desktop module and fonts; where they
     * cannot be drawn, everything else is still written and the reason is returned (empty when drawn).
     */
    public static Optional<String> write(Path dir, String model, List<NiahResult> results) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("results.json"), json(model, results), StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("results.csv"), csv(results), StandardCharsets.UTF_8);
        Optional<String> skipped = Optional.empty();
        if (ModuleLayer.boot().findModule("java.desktop").isEmpty()) {
            // A runtime jlinked without it: NiahCharts would not even link.
            skipped = Optional.of("this Java runtime has no java.desktop module");
        } else {
            try {
                NiahCharts.write(dir, group(results), summarize(results));
            } catch (VirtualMachineError e) {
                throw e;
            } catch (RuntimeException | Error e) {
                // e.g. a headless machine without fonts
                skipped = Optional.of("drawing failed: " + e);
            }
        }
        Files.writeString(
                dir.resolve("report.html"), html(model, results, skipped.orElse(null)), StandardCharsets.UTF_8);
        return skipped;
    }

    static String heatmapName(String configuration) {
        return "heatmap-" + configuration.replaceAll("[^A-Za-z0-9._-]", "_") + ".png";
    }

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** {@code {"model", "runs": [...]}}: one object per cell, fields in the documented order. */
    static String json(String model, List<NiahResult> results) {
        ObjectNode root = JSON.createObjectNode();
        root.put("model", model);
        ArrayNode runs = root.putArray("runs");
        for (NiahResult r : results) {
            ObjectNode o = runs.addObject();
            o.put("policy", r.policy());
            o.put("budget", r.budget());
            o.put("budgetTokens", r.budgetTokens());
            o.put("quant", r.quant());
            o.put("mode", r.mode());
            o.put("length", r.length());
            o.put("depth", r.depth());
            o.put("needleDepth", r.needleDepth());
            o.put("sample", r.sample());
            o.put("key", r.key());
            o.put("expected", r.expected());
            o.put("correct", r.correct());
            o.put("output", r.output());
            o.put("kvBytesRetained", r.kvBytesRetained());
            o.put("kvBytesFull", r.kvBytesFull());
            o.put("millis", r.millis());
        }
        try {
            return JSON.writeValueAsString(root) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("results could not be written as JSON: " + e.getOriginalMessage(), e);
        }
    }

    static String csv(List<NiahResult> results) {
        StringBuilder b = new StringBuilder(
                "policy,budget,budgetTokens,quant,mode,length,depth,needleDepth,sample,key,expected,correct,output,"
                        + "kvBytesRetained,kvBytesFull,millis\n");
        for (NiahResult r : results) {
            b.append(String.join(
                            ",",
                            r.policy(),
                            num(r.budget()),
                            String.valueOf(r.budgetTokens()),
                            r.quant(),
                            r.mode(),
                            String.valueOf(r.length()),
                            num(r.depth()),
                            num(r.needleDepth()),
                            String.valueOf(r.sample()),
                            csvQuote(r.key()),
                            csvQuote(r.expected()),
                            String.valueOf(r.correct()),
                            csvQuote(r.output()),
                            String.valueOf(r.kvBytesRetained()),
                            String.valueOf(r.kvBytesFull()),
                            String.valueOf(r.millis())))
                    .append('\n');
        }
        return b.toString();
    }

    static String num(double x) {
        if (x == Math.rint(x) && Math.abs(x) < 1e15) {
            return String.valueOf((long) x);
        }
        return String.format(Locale.ROOT, "%.6g", x).replaceAll("0+$", "").replaceAll("\\.$", "");
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** RFC 4180 quoting, with line breaks written as {@code \n} so that every run is one line. */
    static String csvQuote(String s) {
        return "\"" + s.replace("\"", "\"\"").replace("\r", "\\r").replace("\n", "\\n") + "\"";
    }

    static String html(String model, List<NiahResult> results) {
        return html(model, results, null);
    }

    /** The report page; {@code chartsSkipped}, when not null, replaces the charts by why they are missing. */
    static String html(String model, List<NiahResult> results, String chartsSkipped) {
        StringBuilder b = new StringBuilder();
        b.append(
                        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>kvcache4j NIAH report</title>\n")
                .append(
                        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
                                + "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#eee}"
                                + "td:first-child{text-align:left}img{max-width:100%;margin:8px 0;border:1px solid #ddd}</style>\n")
                .append("</head><body>\n<h1>Needle in a haystack</h1>\n<p>Model: <code>")
                .append(escape(model))
                .append("</code>; ")
                .append(results.size())
                .append(
                        " cells. A cell is correct when the generated text contains VALUE exactly. KV bytes kept are"
                                + " the bytes the cache held when the answer was generated; full is a full f16 cache for the"
                                + " same tokens.</p>\n<h2>Summary</h2>\n<table id=\"summary\"><tr><th>configuration</th>"
                                + "<th>accuracy</th><th>correct</th><th>KV bytes kept</th><th>of full</th><th>time (s)</th></tr>\n");
        for (Summary s : summarize(results)) {
            b.append(String.format(
                    Locale.ROOT,
                    "<tr><td>%s</td><td>%.1f%%</td><td>%d/%d</td><td>%.0f</td><td>%.1f%%</td><td>%.1f</td></tr>\n",
                    escape(s.configuration()),
                    100 * s.accuracy(),
                    s.correct(),
                    s.cells(),
                    s.meanBytesRetained(),
                    100 * s.keptFraction(),
                    s.millis() / 1000.0));
        }
        b.append("</table>\n");
        if (chartsSkipped != null) {
            b.append("<p>Charts not drawn: ").append(escape(chartsSkipped)).append(".</p>\n");
        } else {
            b.append("<h2>Accuracy against bytes kept</h2>\n<img class=\"plot\" src=\"accuracy-vs-bytes.png\""
                    + " alt=\"accuracy against KV bytes kept\">\n<h2>Heatmaps</h2>\n");
            for (String conf : group(results).keySet()) {
                b.append("<h3>")
                        .append(escape(conf))
                        .append("</h3>\n<img class=\"heatmap\" src=\"")
                        .append(heatmapName(conf))
                        .append("\" alt=\"heatmap ")
                        .append(escape(conf))
                        .append("\">\n");
            }
        }
        // Lets a headless browser check that every image decoded.
        b.append("<script>window.addEventListener('load',function(){var imgs=document.images,ok=0;"
                + "for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}"
                + "document.body.setAttribute('data-images-loaded',ok+'/'+imgs.length);});</script>\n");
        b.append("</body></html>\n");
        return b.toString();
    }

    static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
