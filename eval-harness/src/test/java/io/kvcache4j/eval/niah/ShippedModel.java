package io.kvcache4j.eval.niah;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the tests find the model the project ships (module directory is the working directory). */
public final class ShippedModel {
    private ShippedModel() {}

    public static Path path() {
        for (Path p : new Path[] {Path.of("../model/kvcache4j-niah.gguf"), Path.of("model/kvcache4j-niah.gguf")}) {
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        throw new IllegalStateException("shipped model model/kvcache4j-niah.gguf not found from "
                + Path.of("").toAbsolutePath());
    }
}
