package io.kvcache4j.eval.niah;

import io.kvcache4j.eval.niah.NiahReport.Summary;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import javax.imageio.ImageIO;

/**
 * The NIAH report's charts: one {@code heatmap-<configuration>.png} per configuration and {@code
 * accuracy-vs-bytes.png}. Kept apart from {@link NiahReport} because they need the java.desktop module,
 * which a jlinked runtime may leave out; the rest of the report is written without it.
 */
final class NiahCharts {
    private NiahCharts() {}

    static void write(Path dir, Map<String, List<NiahResult>> byConfiguration, List<Summary> summaries)
            throws IOException {
        for (var e : byConfiguration.entrySet()) {
            ImageIO.write(
                    heatmap(e.getKey(), e.getValue()),
                    "png",
                    dir.resolve(NiahReport.heatmapName(e.getKey())).toFile());
        }
        ImageIO.write(
                accuracyVsBytes(summaries),
                "png",
                dir.resolve("accuracy-vs-bytes.png").toFile());
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
}
