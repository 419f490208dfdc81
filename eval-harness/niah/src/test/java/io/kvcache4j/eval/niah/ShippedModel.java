package io.kvcache4j.eval.niah;

import java.nio.file.Files;
import java.nio.file.Path;

/** Where the tests find the model the project ships: {@code model/} in the first directory up from the module. */
public final class ShippedModel {
    private ShippedModel() {}

    public static Path path() {
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path p = dir.resolve("model").resolve("kvcache4j-niah.gguf");
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        throw new IllegalStateException("shipped model model/kvcache4j-niah.gguf not found from "
                + Path.of("").toAbsolutePath());
    }
}
