package io.kvcache4j.eval.niah;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Filler text cut into sentences, each tokenized once with its leading space. Prompts are built by
 * concatenating sentence token lists (the byte-level BPE pre-tokenizer attaches a leading space to
 * the following word, so sentence-wise tokenization equals tokenizing the joined text) and the needle
 * goes in at a sentence boundary.
 */
public final class Haystack {
    /** Resource path of the text the project ships. */
    public static final String BUILT_IN = "/io/kvcache4j/eval/haystack.txt";

    private final String name;
    private final List<String> sentences;
    private final List<int[]> tokens;

    private Haystack(String name, List<String> sentences, TextCodec codec) {
        this.name = name;
        this.sentences = sentences;
        this.tokens = new ArrayList<>(sentences.size());
        for (String s : sentences) {
            tokens.add(codec.encode(" " + s));
        }
    }

    public static Haystack builtIn(TextCodec codec) throws IOException {
        try (InputStream in = Haystack.class.getResourceAsStream(BUILT_IN)) {
            if (in == null) {
                throw new IOException("built-in haystack " + BUILT_IN + " missing from the class path");
            }
            return of("built-in", new String(in.readAllBytes(), StandardCharsets.UTF_8), codec);
        }
    }

    public static Haystack fromFile(Path file, TextCodec codec) throws IOException {
        return of(file.getFileName().toString(), Files.readString(file, StandardCharsets.UTF_8), codec);
    }

    static Haystack of(String name, String text, TextCodec codec) {
        List<String> sentences = split(text);
        if (sentences.size() < 8) {
            throw new IllegalArgumentException("haystack '" + name + "' has " + sentences.size()
                    + " sentences; need at least 8 (sentences end with '.', '!' or '?')");
        }
        return new Haystack(name, sentences, codec);
    }

    /** Splits on sentence ends ('.', '!', '?' followed by whitespace), collapsing whitespace. */
    static List<String> split(String text) {
        String flat = text.replaceAll("\\s+", " ").trim();
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < flat.length(); i++) {
            char ch = flat.charAt(i);
            if ((ch == '.' || ch == '!' || ch == '?') && (i + 1 == flat.length() || flat.charAt(i + 1) == ' ')) {
                String s = flat.substring(start, i + 1).trim();
                if (!s.isEmpty()) {
                    out.add(s);
                }
                start = i + 1;
            }
        }
        return out;
    }

    public String name() {
        return name;
    }

    public int sentenceCount() {
        return sentences.size();
    }

    int[] sentenceTokens(int i) {
        return tokens.get(i % tokens.size());
    }

    String sentence(int i) {
        return sentences.get(i % sentences.size());
    }
}
