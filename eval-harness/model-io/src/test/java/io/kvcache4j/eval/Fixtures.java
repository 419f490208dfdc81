package io.kvcache4j.eval;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The shared test fixtures folder, outside the project: system property {@code kvcache4j.fixtures}
 * (the build sets it to {@code ../shared/fixtures} relative to the project root) or environment
 * variable {@code KVCACHE4J_FIXTURES}. Tests that need it skip, with a message, when it is absent.
 */
public final class Fixtures {
    private Fixtures() {}

    /** The fixtures folder, if configured and present. */
    public static Path root() {
        String p = System.getProperty("kvcache4j.fixtures");
        if (p == null || p.isBlank()) {
            p = System.getenv("KVCACHE4J_FIXTURES");
        }
        return p == null || p.isBlank() ? null : Path.of(p);
    }

    /** {@code <fixtures>/gguf-vocab/ggml-vocab-NAME.gguf}; skips the test when it is not there. */
    public static Path vocab(String name) {
        Path root = root();
        assumeTrue(root != null, "fixtures not configured: set -Dkvcache4j.fixtures or KVCACHE4J_FIXTURES");
        Path p = root.resolve("gguf-vocab").resolve("ggml-vocab-" + name + ".gguf");
        assumeTrue(Files.isRegularFile(p), "fixture " + p + " not present; skipping");
        return p;
    }
}
