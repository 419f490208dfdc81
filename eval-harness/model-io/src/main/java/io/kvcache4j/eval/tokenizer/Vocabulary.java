package io.kvcache4j.eval.tokenizer;

import io.kvcache4j.eval.gguf.GgufArray;
import io.kvcache4j.eval.gguf.GgufFormatException;
import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.gguf.GgufValueType;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * The vocabulary of a GGUF tokenizer as llama.cpp's {@code llama_vocab} loads it: token texts (as
 * byte strings), scores, attributes from {@code tokenizer.ggml.token_type}, BPE merge ranks, the
 * special ids, the end-of-generation set and the pre-tokenizer, with llama.cpp's fix-ups of special
 * tokens. The encoders ({@link SpmEncoder}, {@link BpeEncoder}) and {@link Tokenizer} read it.
 * Immutable and thread-safe.
 */
final class Vocabulary {
    // llama.cpp's llama_token_attr bits
    static final int ATTR_UNKNOWN = 1;
    static final int ATTR_UNUSED = 1 << 1;
    static final int ATTR_NORMAL = 1 << 2;
    static final int ATTR_CONTROL = 1 << 3;
    static final int ATTR_USER_DEFINED = 1 << 4;
    static final int ATTR_BYTE = 1 << 5;
    static final int ATTR_LSTRIP = 1 << 7;
    static final int ATTR_RSTRIP = 1 << 8;

    static final String ESCAPED_SPACE = "\u00E2\u0096\u0081"; // "▁" as UTF-8 bytes
    static final char MERGE_SEPARATOR = '\uFFFF'; // never a byte

    final Tokenizer.Kind kind;
    final String preName;
    final String[] text; // byte strings
    final float[] score;
    final int[] attr;
    final Map<String, Integer> ids;
    final Map<String, Integer> mergeRanks;
    final PreTokenizer preTokenizer;
    final int[] specialTokens; // longest text first
    final BitSet eog;
    final int bos;
    final int eos;
    final int eot;
    final int unk;
    final int pad;
    final boolean addBos;
    final boolean addEos;
    final boolean addSpacePrefix;
    final boolean cleanSpaces;
    final boolean ignoreMerges;

    Vocabulary(GgufModel m) {
        String model = m.getString("tokenizer.ggml.model");
        String pre = m.getString("tokenizer.ggml.pre", "");
        int defBos;
        int defEos;
        int defUnk;
        boolean spacePrefix;
        boolean clean;
        boolean bosByDefault;
        BpePreset preset = null;
        switch (model) {
            case "llama" -> {
                kind = Tokenizer.Kind.SENTENCEPIECE;
                defBos = 1;
                defEos = 2;
                defUnk = 0;
                spacePrefix = true;
                clean = false;
                bosByDefault = true;
                pre = "default";
            }
            case "gpt2" -> {
                kind = Tokenizer.Kind.BPE;
                preset = BpePreset.forName(pre);
                if (preset == null) {
                    throw new UnsupportedOperationException(m.path() + ": tokenizer.ggml.pre '" + pre
                            + "' is not supported; supported: " + BpePreset.supportedNames());
                }
                defBos = preset.noDefaultBos() ? -1 : 11;
                defEos = 11;
                defUnk = -1;
                spacePrefix = false;
                clean = preset.cleanSpaces();
                bosByDefault = preset.addBos();
            }
            default ->
                throw new UnsupportedOperationException(m.path() + ": tokenizer.ggml.model '" + model
                        + "' is not supported; supported: llama (SentencePiece), gpt2 (byte-level BPE)");
        }
        this.preName = pre;
        this.addSpacePrefix = m.getBoolean("tokenizer.ggml.add_space_prefix", spacePrefix);
        this.cleanSpaces = clean;
        this.ignoreMerges = preset != null && preset.ignoreMerges();
        this.preTokenizer = preset != null ? PreTokenizer.of(preset.expressions()) : null;

        GgufArray tokens = m.getArray("tokenizer.ggml.tokens");
        if (tokens.elementType() != GgufValueType.STRING) {
            throw new GgufFormatException(
                    m.path() + ": tokenizer.ggml.tokens must be an array of STRING, is " + tokens.elementType());
        }
        int n = tokens.size();
        float[] scores = null;
        if (m.hasKey("tokenizer.ggml.scores")) {
            GgufArray s = m.getArray("tokenizer.ggml.scores");
            if (s.elementType() != GgufValueType.FLOAT32 && s.elementType() != GgufValueType.INT32) {
                throw new GgufFormatException(
                        m.path() + ": tokenizer.ggml.scores must be FLOAT32 or INT32, is " + s.elementType());
            }
            if (s.size() < n) {
                throw new GgufFormatException(
                        m.path() + ": tokenizer.ggml.scores has " + s.size() + " entries for " + n + " tokens");
            }
            scores = s.toFloatArray();
        }
        int[] types = null;
        if (m.hasKey("tokenizer.ggml.token_type")) {
            GgufArray t = m.getArray("tokenizer.ggml.token_type");
            if (t.elementType() != GgufValueType.INT32) {
                throw new GgufFormatException(
                        m.path() + ": tokenizer.ggml.token_type must be INT32, is " + t.elementType());
            }
            if (t.size() < n) {
                throw new GgufFormatException(
                        m.path() + ": tokenizer.ggml.token_type has " + t.size() + " entries for " + n + " tokens");
            }
            types = t.toIntArray();
        }
        this.text = new String[n];
        this.score = new float[n];
        this.attr = new int[n];
        this.ids = new HashMap<>(n * 2);
        for (int i = 0; i < n; i++) {
            String word = Unicode.byteString(tokens.getStringBytes(i));
            if (word.isEmpty()) {
                word = "[EMPTY_" + i + "]";
            }
            Integer prev = ids.putIfAbsent(word, i);
            if (prev != null) {
                throw new GgufFormatException(m.path() + ": duplicate token in vocabulary: '" + tokens.getString(i)
                        + "' has ids " + prev + " and " + i);
            }
            text[i] = word;
            score[i] = scores != null ? scores[i] : 0f;
            attr[i] = types == null ? ATTR_NORMAL : attrOfType(types[i]);
        }

        if (kind == Tokenizer.Kind.BPE) {
            GgufArray merges = m.getArray("tokenizer.ggml.merges");
            if (merges.elementType() != GgufValueType.STRING) {
                throw new GgufFormatException(
                        m.path() + ": tokenizer.ggml.merges must be an array of STRING, is " + merges.elementType());
            }
            mergeRanks = new HashMap<>(merges.size() * 2);
            for (int i = 0; i < merges.size(); i++) {
                String w = Unicode.byteString(merges.getStringBytes(i));
                int sp = w.indexOf(' ', 1);
                String key =
                        sp >= 0 ? w.substring(0, sp) + MERGE_SEPARATOR + w.substring(sp + 1) : "" + MERGE_SEPARATOR;
                mergeRanks.putIfAbsent(key, i);
            }
        } else {
            mergeRanks = Map.of();
        }

        int bosId = specialId(m, "tokenizer.ggml.bos_token_id", defBos, n);
        int eosId = specialId(m, "tokenizer.ggml.eos_token_id", defEos, n);
        int eotId = specialId(m, "tokenizer.ggml.eot_token_id", -1, n);
        int eomId = specialId(m, "tokenizer.ggml.eom_token_id", -1, n);
        this.unk = specialId(m, "tokenizer.ggml.unknown_token_id", defUnk, n);
        this.pad = specialId(m, "tokenizer.ggml.padding_token_id", -1, n);
        int[] fim = new int[6];
        String[] fimKeys = {"pre", "suf", "mid", "pad", "rep", "sep"};
        for (int k = 0; k < 6; k++) {
            fim[k] = specialId(m, "tokenizer.ggml.fim_" + fimKeys[k] + "_token_id", -1, n);
        }
        fim[0] = specialId(m, "tokenizer.ggml.prefix_token_id", fim[0], n);
        fim[1] = specialId(m, "tokenizer.ggml.suffix_token_id", fim[1], n);
        fim[2] = specialId(m, "tokenizer.ggml.middle_token_id", fim[2], n);
        this.addBos = m.getBoolean("tokenizer.ggml.add_bos_token", bosByDefault);
        this.addEos = m.getBoolean("tokenizer.ggml.add_eos_token", false);
        if (addBos && bosId < 0) {
            throw new GgufFormatException(
                    m.path() + ": tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
        }
        if (addEos && eosId < 0) {
            throw new GgufFormatException(
                    m.path() + ": tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");
        }

        // Texts by which llama.cpp recognises end-of-turn, FIM and end-of-generation tokens; each is
        // then treated as a control token.
        if (eotId < 0) {
            eotId = firstWithText(Set.of(
                    "<|eot_id|>",
                    "<|im_end|>",
                    "<|end|>",
                    "<end_of_turn>",
                    "<|endoftext|>",
                    "<|end_of_text|>",
                    "<EOT>",
                    "_<EOT>",
                    "[EOT]",
                    "<｜end▁of▁sentence｜>",
                    "<end_of_utterance>"));
            markControl(eotId);
        }
        if (eomId < 0) {
            eomId = firstWithText(Set.of("<|eom_id|>"));
            markControl(eomId);
        }
        List<Set<String>> fimTexts = List.of(
                Set.of(
                        "<|fim_prefix|>",
                        "<fim-prefix>",
                        "<fim_prefix>",
                        "<｜fim▁begin｜>",
                        "<PRE>",
                        "▁<PRE>",
                        "<|code_prefix|>",
                        "<|prefix|>"),
                Set.of(
                        "<|fim_suffix|>",
                        "<fim-suffix>",
                        "<fim_suffix>",
                        "<｜fim▁hole｜>",
                        "<SUF>",
                        "▁<SUF>",
                        "<|code_suffix|>",
                        "<|suffix|>"),
                Set.of(
                        "<|fim_middle|>",
                        "<fim-middle>",
                        "<fim_middle>",
                        "<｜fim▁end｜>",
                        "<MID>",
                        "▁<MID>",
                        "<|code_middle|>",
                        "<|middle|>"),
                Set.of("<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"),
                Set.of("<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"),
                Set.of("<|file_sep|>"));
        for (int k = 0; k < 6; k++) {
            if (fim[k] < 0) {
                fim[k] = firstWithText(fimTexts.get(k));
                markControl(fim[k]);
            }
        }
        Set<String> eogTexts = Set.of(
                "<|eot_id|>",
                "<|im_end|>",
                "<|end|>",
                "<|return|>",
                "<|call|>",
                "<|flush|>",
                "<|calls|>",
                "<end_of_turn>",
                "<|endoftext|>",
                "</s>",
                "<|eom_id|>",
                "<EOT>",
                "_<EOT>",
                "[EOT]",
                "[EOS]",
                "<|end_of_text|>",
                "<end_of_utterance>",
                "<eos>",
                "<turn|>",
                "<|tool_response>",
                "<｜end▁of▁sentence｜>",
                "[e~[");
        BitSet eogSet = new BitSet(n);
        for (int k = 3; k < 6; k++) {
            if (fim[k] >= 0) {
                eogSet.set(fim[k]);
            }
        }
        for (String s : eogTexts) {
            Integer id = ids.get(Unicode.utf8Bytes(s));
            if (id != null) {
                eogSet.set(id);
                attr[id] |= ATTR_CONTROL;
            }
        }
        for (String s : List.of("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")) {
            Integer id = ids.get(Unicode.utf8Bytes(s));
            if (id != null) {
                attr[id] = ATTR_USER_DEFINED;
            }
        }
        for (int id : new int[] {eosId, eotId, eomId}) {
            if (id >= 0) {
                eogSet.set(id);
            }
        }
        Integer endId = ids.get("<|end|>");
        boolean hasReturn = hasEog(eogSet, "<|return|>");
        boolean hasCall = hasEog(eogSet, "<|call|>") || hasEog(eogSet, "<|calls|>");
        boolean hasFlush = hasEog(eogSet, "<|flush|>");
        if (endId != null && eogSet.get(endId) && ((hasReturn && hasCall) || (hasCall && hasFlush))) {
            eogSet.clear(endId);
            attr[endId] = ATTR_USER_DEFINED;
        }
        Integer sId = ids.get("</s>");
        if (sId != null && eogSet.get(sId) && hasEog(eogSet, "<|tool_response>")) {
            eogSet.clear(sId);
            attr[sId] = ATTR_NORMAL;
        }
        this.eog = eogSet;
        this.bos = bosId;
        this.eos = eosId;
        this.eot = eotId;

        List<Integer> special = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if ((attr[i] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN)) != 0) {
                special.add(i);
            }
        }
        special.sort(Comparator.comparingInt((Integer i) -> -text[i].length()).thenComparingInt(i -> i));
        this.specialTokens = special.stream().mapToInt(Integer::intValue).toArray();

        String name = m.getString("general.name", "").toLowerCase(Locale.ROOT);
        if (name.contains("phi-3") || name.contains("phi3")) {
            for (int id : specialTokens) {
                attr[id] |= ATTR_RSTRIP;
            }
            setAttr("</s>", ATTR_RSTRIP, true);
            for (String s : List.of("<unk>", "<s>", "<|endoftext|>")) {
                setAttr(s, ATTR_RSTRIP, false);
            }
        }
    }

    private boolean hasEog(BitSet eogSet, String t) {
        Integer id = ids.get(Unicode.utf8Bytes(t));
        return id != null && eogSet.get(id);
    }

    private void setAttr(String token, int bit, boolean on) {
        Integer id = ids.get(Unicode.utf8Bytes(token));
        if (id != null) {
            attr[id] = on ? attr[id] | bit : attr[id] & ~bit;
        }
    }

    /** The lowest id among the tokens with one of these texts, or -1. */
    private int firstWithText(Set<String> texts) {
        int best = -1;
        for (String s : texts) {
            Integer id = ids.get(Unicode.utf8Bytes(s));
            if (id != null && (best < 0 || id < best)) {
                best = id;
            }
        }
        return best;
    }

    private void markControl(int id) {
        if (id >= 0) {
            attr[id] |= ATTR_CONTROL;
        }
    }

    private static int specialId(GgufModel m, String key, int defaultId, int vocabSize) {
        int id = defaultId >= vocabSize ? -1 : defaultId;
        if (!m.hasKey(key)) {
            return id;
        }
        long v = m.getLong(key);
        return v >= 0 && v < vocabSize ? (int) v : id;
    }

    private static int attrOfType(int type) {
        return switch (type) {
            case 1 -> ATTR_NORMAL;
            case 2 -> ATTR_UNKNOWN;
            case 3 -> ATTR_CONTROL;
            case 4 -> ATTR_USER_DEFINED;
            case 5 -> ATTR_UNUSED;
            case 6 -> ATTR_BYTE;
            default -> 0;
        };
    }

    static String utf8(String byteString) {
        return new String(Unicode.bytes(byteString), StandardCharsets.UTF_8);
    }
}
