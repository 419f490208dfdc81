package io.kvcache4j.eval.cli;

import io.kvcache4j.eval.niah.TextCodec;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/** Locating the shipped model and adapting tokenizers for the harness. */
final class ModelFiles {
    /** Set by bin/kvcache4j to the project root. */
    static final String HOME_PROPERTY = "kvcache4j.home";

    private ModelFiles() {}

    /** The model the project trains and ships: {@code model/kvcache4j-niah.gguf} under the project root. */
    static Path shippedModel() {
        String home = System.getProperty(HOME_PROPERTY, ".");
        Path p = Path.of(home, "model", "kvcache4j-niah.gguf");
        if (!Files.isRegularFile(p)) {
            throw new UsageException("shipped model not found at " + p.toAbsolutePath() + "; pass --model FILE");
        }
        return p;
    }

    static Path existing(String file) {
        Path p = Path.of(file);
        if (!Files.isRegularFile(p)) {
            throw new UsageException("no such file: " + p);
        }
        return p;
    }

    static TextCodec codec(Tokenizer tokenizer) {
        return new TextCodec() {
            @Override
            public int[] encode(String text) {
                return tokenizer.encode(text, false, false);
            }

            @Override
            public String decode(int[] ids, int from, int to) {
                return tokenizer.decode(Arrays.copyOfRange(ids, from, to));
            }

            @Override
            public int bosId() {
                return tokenizer.bosId();
            }

            @Override
            public int eosId() {
                return tokenizer.eosId();
            }
        };
    }
}
