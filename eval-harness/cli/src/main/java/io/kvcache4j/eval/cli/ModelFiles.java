package io.kvcache4j.eval.cli;

import io.kvcache4j.eval.niah.TextCodec;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The files the command line reads and writes (the shipped model, input files, the report folder),
 * and the tokenizer adapter of the harness.
 */
final class ModelFiles {
    /** Set by bin/kvcache4j to the project root. */
    static final String HOME_PROPERTY = "kvcache4j.home";

    private ModelFiles() {}

    /** The model the project trains and ships: {@code model/kvcache4j-niah.gguf} under the project root. */
    static Path shippedModel() {
        String home = System.getProperty(HOME_PROPERTY, ".");
        Path p = Path.of(home, "model", "kvcache4j-niah.gguf");
        if (!Files.isRegularFile(p)) {
            throw new BadOption(
                    "--model",
                    "--model not given, and the shipped model is not at " + p.toAbsolutePath() + "; pass --model FILE");
        }
        return p;
    }

    /** {@code file}, the value of {@code option}, or the shipped model when it is null. */
    static Path modelOrShipped(Path file) {
        return file == null ? shippedModel() : readable("--model", file);
    }

    /** Throws unless {@code file}, the value of {@code option}, is a readable regular file. */
    static Path readable(String option, Path file) {
        String prefix = option + " " + file;
        if (file.toString().isBlank()) {
            throw new BadOption(option, option + " must not be empty");
        }
        if (Files.isDirectory(file)) {
            throw new BadOption(option, prefix + ": is a directory; a file is needed");
        }
        if (!Files.exists(file)) {
            throw new BadOption(option, prefix + ": no such file");
        }
        if (!Files.isRegularFile(file)) {
            throw new BadOption(option, prefix + ": not a regular file");
        }
        if (!Files.isReadable(file)) {
            throw new BadOption(option, prefix + ": not readable (permission denied)");
        }
        return file;
    }

    /**
     * Creates {@code dir} if needed and proves it writable with a probe file, so that a run does not
     * discover at its end that it cannot write its report; any of {@code files} that already exists
     * there must be a writable regular file. Returns the folders this call created, deepest last, so
     * that a run that fails before writing anything can remove them ({@link #removeIfEmpty}).
     */
    static List<Path> writableDirectory(String option, Path dir, List<String> files) {
        if (dir.toString().isBlank()) {
            throw new BadOption(option, option + " must not be empty");
        }
        List<Path> created = new ArrayList<>();
        for (Path p = dir.toAbsolutePath(); p != null && !Files.exists(p); p = p.getParent()) {
            created.add(0, p);
        }
        try {
            Files.createDirectories(dir);
            Path probe = Files.createTempFile(dir, ".write-probe", ".tmp");
            Files.delete(probe);
        } catch (IOException | SecurityException e) {
            removeIfEmpty(created);
            throw new BadOption(option, option + " " + dir + " is not a writable directory (" + reason(e) + ")");
        }
        for (String f : files) {
            Path p = dir.resolve(f);
            if (Files.exists(p) && (!Files.isRegularFile(p) || !Files.isWritable(p))) {
                removeIfEmpty(created);
                throw new BadOption(option, option + " " + dir + ": " + f + " exists there and cannot be replaced");
            }
        }
        return created;
    }

    /** Removes the folders of {@code created} (deepest first) that are still empty. */
    static void removeIfEmpty(List<Path> created) {
        for (int i = created.size() - 1; i >= 0; i--) {
            try (var entries = Files.list(created.get(i))) {
                if (entries.findAny().isPresent()) {
                    return;
                }
                Files.delete(created.get(i));
            } catch (IOException e) {
                return;
            }
        }
    }

    private static String reason(Exception e) {
        if (e instanceof AccessDeniedException) {
            return "permission denied";
        }
        if (e instanceof FileAlreadyExistsException f) {
            return f.getFile() + " exists and is not a directory";
        }
        if (e instanceof FileSystemException f && f.getReason() != null) {
            return (f.getFile() != null ? f.getFile() + ": " : "") + f.getReason();
        }
        if (e instanceof IOException io) {
            return describe(io);
        }
        return e.getMessage() == null ? "cannot write" : e.getMessage();
    }

    /** What went wrong with a file, in words (no exception names). */
    static String describe(IOException e) {
        if (e instanceof NoSuchFileException n) {
            return "no such file or directory: " + n.getFile();
        }
        if (e instanceof AccessDeniedException a) {
            return "permission denied: " + a.getFile();
        }
        if (e instanceof FileAlreadyExistsException f) {
            return f.getFile() + " exists and is not a directory";
        }
        if (e instanceof FileSystemException f) {
            String reason = f.getReason() != null ? f.getReason() : "cannot be accessed";
            return (f.getFile() != null ? f.getFile() + ": " : "") + reason;
        }
        return e.getMessage() != null ? e.getMessage() : "input/output error";
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
