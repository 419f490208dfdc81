package io.kvcache4j.eval.niah;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
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
import java.util.TreeSet;
import javax.imageio.ImageIO;

/**
 * Writes a NIAH run's report: {@code results.json} (the contract: {@code {"model", "runs": [...]}}),
 * {@code results.csv}, one {@code heatmap-<configuration>.png} per configuration (length × depth,
 * coloured by accuracy), {@code accuracy-vs-bytes.png}, and {@code report.html} with all of them and
 * the summary table.
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

    public static void write(Path dir, String model, List<NiahResult> results) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("results.json"), json(model, results), StandardCharsets.UTF_8);
        Files.writeString(dir.resolve("results.csv"), csv(results), StandardCharsets.UTF_8);
        Map<String, List<NiahResult>> by = group(results);
        for (var e : by.entrySet()) {
            ImageIO.write(
                    heatmap(e.getKey(), e.getValue()),
                    "png",
                    dir.resolve(heatmapName(e.getKey())).toFile());
        }
        ImageIO.write(
                accuracyVsBytes(summarize(results)),
                "png",
                dir.resolve("accuracy-vs-bytes.png").toFile());
        Files.writeString(dir.resolve("report.html"), html(model, results), StandardCharsets.UTF_8);
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

    /** Accuracy colour: red (0) through yellow to green (1), like the classic NIAH plots. */
    static Color colour(double accuracy) {
        float hue = (float) (accuracy * 0.33);
        return Color.getHSBColor(hue, 0.75f, 0.92f);
    }

    static BufferedImage heatmap(String configuration, List<NiahResult> runs) {
        List<Integer> lengths = new ArrayList<>(
                new TreeSet<>(runs.stream().map(NiahResult::length).toList()));
        List<Double> depths = new ArrayList<>(
                new TreeSet<>(runs.stream().map(NiahResult::depth).toList()));
        int cellW = 110;
        int cellH = 34;
        int left = 90;
        int top = 70;
        int width = left + cellW * lengths.size() + 130;
        int height = top + cellH * depths.size() + 60;
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, width, height);
        g.setColor(Color.BLACK);
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 15));
        int correct = (int) runs.stream().filter(NiahResult::correct).count();
        double kept = runs.stream()
                .mapToDouble(r -> r.kvBytesRetained() / (double) r.kvBytesFull())
                .average()
                .orElse(0);
        g.drawString(
                String.format(
                        Locale.ROOT,
                        "%s: %.1f%% correct, KV kept %.1f%% of full f16",
                        configuration,
                        100.0 * correct / runs.size(),
                        100 * kept),
                10,
                22);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        g.drawString("Context length (tokens)", left + cellW * lengths.size() / 2 - 60, height - 15);
        Graphics2D rot = (Graphics2D) g.create();
        rot.rotate(-Math.PI / 2);
        rot.drawString("Needle depth", -(top + cellH * depths.size() / 2 + 35), 18);
        rot.dispose();
        FontMetrics fm = g.getFontMetrics();
        for (int xi = 0; xi < lengths.size(); xi++) {
            String s = String.valueOf(lengths.get(xi));
            g.drawString(s, left + xi * cellW + (cellW - fm.stringWidth(s)) / 2, top - 8);
            for (int yi = 0; yi < depths.size(); yi++) {
                final int len = lengths.get(xi);
                final double dep = depths.get(yi);
                List<NiahResult> cell = runs.stream()
                        .filter(r -> r.length() == len && r.depth() == dep)
                        .toList();
                double acc = cell.stream().filter(NiahResult::correct).count() / (double) Math.max(1, cell.size());
                int x = left + xi * cellW;
                int y = top + yi * cellH;
                g.setColor(cell.isEmpty() ? Color.LIGHT_GRAY : colour(acc));
                g.fillRect(x, y, cellW, cellH);
                g.setColor(Color.WHITE);
                g.setStroke(new BasicStroke(1));
                g.drawRect(x, y, cellW, cellH);
                g.setColor(Color.BLACK);
                String label = cell.isEmpty() ? "-" : String.format(Locale.ROOT, "%.0f%%", 100 * acc);
                g.drawString(label, x + (cellW - fm.stringWidth(label)) / 2, y + cellH / 2 + 5);
            }
        }
        for (int yi = 0; yi < depths.size(); yi++) {
            String s = String.format(Locale.ROOT, "%.2f", depths.get(yi));
            g.drawString(s, left - fm.stringWidth(s) - 8, top + yi * cellH + cellH / 2 + 5);
        }
        // Legend.
        int lx = left + cellW * lengths.size() + 30;
        for (int i = 0; i <= 10; i++) {
            g.setColor(colour(1 - i / 10.0));
            g.fillRect(lx, top + i * 18, 24, 18);
        }
        g.setColor(Color.BLACK);
        g.drawString("100%", lx + 30, top + 12);
        g.drawString("0%", lx + 30, top + 10 * 18 + 14);
        g.dispose();
        return img;
    }

    static BufferedImage accuracyVsBytes(List<Summary> summaries) {
        int w = 760;
        int h = 480;
        int left = 70;
        int bottom = 60;
        int top = 40;
        int right = 200;
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, w, h);
        int pw = w - left - right;
        int ph = h - top - bottom;
        g.setColor(Color.BLACK);
        g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, 14));
        g.drawString("Accuracy against KV bytes actually kept (fraction of the full f16 cache)", 10, 22);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        g.drawRect(left, top, pw, ph);
        for (int i = 0; i <= 10; i += 2) {
            int x = left + pw * i / 10;
            int y = top + ph - ph * i / 10;
            g.drawString(String.format(Locale.ROOT, "%.1f", i / 10.0), x - 8, top + ph + 16);
            g.drawString(String.format(Locale.ROOT, "%d%%", i * 10), left - 40, y + 4);
            g.setColor(new Color(230, 230, 230));
            g.drawLine(x, top, x, top + ph);
            g.drawLine(left, y, left + pw, y);
            g.setColor(Color.BLACK);
        }
        g.drawString("KV bytes kept / full", left + pw / 2 - 50, h - 15);
        Color[] palette = {
            new Color(31, 119, 180), new Color(255, 127, 14), new Color(44, 160, 44), new Color(214, 39, 40),
            new Color(148, 103, 189), new Color(140, 86, 75), new Color(227, 119, 194), new Color(127, 127, 127),
            new Color(188, 189, 34), new Color(23, 190, 207)
        };
        Map<String, Color> colours = new LinkedHashMap<>();
        for (Summary s : summaries) {
            String policy = s.configuration().split("-b|-none|-int|-1bit")[0];
            Color c = colours.computeIfAbsent(policy, k -> palette[colours.size() % palette.length]);
            int x = left + (int) Math.round(pw * Math.min(1.0, s.keptFraction()));
            int y = top + ph - (int) Math.round(ph * s.accuracy());
            g.setColor(c);
            g.fillOval(x - 6, y - 6, 12, 12);
        }
        int ly = top + 10;
        for (var e : colours.entrySet()) {
            g.setColor(e.getValue());
            g.fillOval(left + pw + 20, ly - 9, 10, 10);
            g.setColor(Color.BLACK);
            g.drawString(e.getKey(), left + pw + 36, ly);
            ly += 18;
        }
        g.dispose();
        return img;
    }

    static String html(String model, List<NiahResult> results) {
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
        b.append("</table>\n<h2>Accuracy against bytes kept</h2>\n<img class=\"plot\" src=\"accuracy-vs-bytes.png\""
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
