package io.kvcache4j.eval.niah;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class NiahReportTest {
    private static final List<NiahResult> RESULTS = List.of(
            new NiahResult(
                    "full",
                    1,
                    512,
                    "none",
                    "query-agnostic",
                    512,
                    0,
                    0,
                    0,
                    "quiet harbor",
                    "1234567",
                    true,
                    " 1234567.",
                    100_000,
                    100_000,
                    5),
            new NiahResult(
                    "full",
                    1,
                    512,
                    "int8",
                    "query-agnostic",
                    512,
                    0,
                    0,
                    0,
                    "quiet harbor",
                    "1234567",
                    false,
                    " 12.",
                    56_000,
                    100_000,
                    5));

    @Test
    void writesEveryFileAndTheCharts(@TempDir Path dir) throws Exception {
        Optional<String> skipped = NiahReport.write(dir, "m.gguf", RESULTS);
        assertEquals(Optional.empty(), skipped, "this JDK has java.desktop");
        for (String f : List.of(
                "results.json",
                "results.csv",
                "report.html",
                "accuracy-vs-bytes.png",
                "heatmap-full-none-query-agnostic.png",
                "heatmap-full-int8-query-agnostic.png")) {
            assertTrue(Files.isRegularFile(dir.resolve(f)), f);
        }
        assertTrue(Files.readString(dir.resolve("report.html")).contains("<img class=\"heatmap\""));
    }

    @Test
    void aPageWithoutChartsSaysWhy() {
        String html = NiahReport.html("m.gguf", RESULTS, "this Java runtime has no java.desktop module");
        assertTrue(html.contains("Charts not drawn: this Java runtime has no java.desktop module."), html);
        assertFalse(html.contains("<img class="), html);
        assertTrue(html.contains("<table id=\"summary\">"), html);
    }
}
