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

    /**
     * Creates {@code dir} if needed and proves it writable with a probe file, so that a run does not
     * discover at its end that it cannot write its report.
     */
    static void checkWritableDirectory(Path dir, String option) {
        try {
            Files.createDirectories(dir);
            Path probe = Files.createTempFile(dir, ".write-probe", ".tmp");
            Files.delete(probe);
        } catch (java.io.IOException | SecurityException e) {
            throw new UsageException(option + " " + dir + " is not a writable directory (" + reason(e) + ")");
        }
    }

    private static String reason(Exception e) {
        if (e instanceof java.nio.file.AccessDeniedException) {
            return "permission denied";
        }
        if (e instanceof java.nio.file.FileAlreadyExistsException) {
            return "a file of that name exists";
        }
        if (e instanceof java.nio.file.FileSystemException f && f.getReason() != null) {
            return f.getReason();
        }
        return e.getMessage() == null ? "cannot write" : e.getMessage();
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
