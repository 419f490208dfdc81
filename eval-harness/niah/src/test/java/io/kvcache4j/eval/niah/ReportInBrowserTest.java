package io.kvcache4j.eval.niah;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Opens a generated report in headless Chromium and checks what a reader sees: the summary table and
 * every image decoded (the page records how many of its images loaded). Skips with a message where
 * Chromium is absent; CI installs it.
 */
class ReportInBrowserTest {
    @TempDir
    Path dir;

    static Path chromium() {
        for (String c : new String[] {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}) {
            if (Files.isExecutable(Path.of(c))) {
                return Path.of(c);
            }
        }
        return null;
    }

    @Test
    void reportRendersWithEveryImageInARealBrowser() throws Exception {
        Path browser = chromium();
        assumeTrue(browser != null, "Chromium not installed (apt-get install chromium); skipping the browser check");
        List<NiahResult> results = new ArrayList<>();
        for (String policy : new String[] {"full", "h2o"}) {
            for (int len : new int[] {512, 1024}) {
                for (double d : new double[] {0, 0.5, 1}) {
                    boolean ok = policy.equals("full") || d == 1;
                    results.add(new NiahResult(
                            policy,
                            policy.equals("full") ? 1 : 0.1,
                            51,
                            "none",
                            "query-agnostic",
                            len,
                            d,
                            d,
                            0,
                            "quiet harbor",
                            "1234567",
                            ok,
                            ok ? " 1234567." : " 12.",
                            policy.equals("full") ? 100_000 : 10_000,
                            100_000,
                            5));
                }
            }
        }
        NiahReport.write(dir, "test-model.gguf", results);
        Process p = new ProcessBuilder(
                        browser.toString(),
                        "--headless",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--user-data-dir=" + dir.resolve("profile"),
                        "--virtual-time-budget=5000",
                        "--dump-dom",
                        dir.resolve("report.html").toUri().toString())
                .redirectError(dir.resolve("chromium.err").toFile())
                .start();
        String dom = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "chromium did not finish");
        // 2 heatmaps + the accuracy plot.
        assertTrue(
                dom.contains("data-images-loaded=\"3/3\""),
                "every image must decode in the browser; body was: " + dom.substring(0, Math.min(400, dom.length())));
        assertTrue(dom.contains("<td>full-none-query-agnostic</td><td>100.0%</td><td>6/6</td>"), dom);
        assertTrue(dom.contains("<td>h2o-b0.1-none-query-agnostic</td><td>33.3%</td><td>2/6</td>"), dom);
        assertEquals(0, p.exitValue(), "chromium exit status");
    }
}
