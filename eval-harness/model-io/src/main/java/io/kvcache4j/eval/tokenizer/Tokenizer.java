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
import java.util.OptionalInt;
import java.util.PriorityQueue;
import java.util.Set;

/**
 * A tokenizer built from a GGUF file's {@code tokenizer.ggml.*} metadata exactly as llama.cpp
 * builds it, producing the same ids for the same text:
 *
 * <ul>
 *   <li>{@code tokenizer.ggml.model = llama}: SentencePiece (SPM) with scores, byte fallback to
 *       {@code <0xXX>} tokens, spaces escaped as {@code ▁}, and a space prepended to every run of
 *       text that starts the input or follows a special token (when {@code
 *       tokenizer.ggml.add_space_prefix} is true, the default);
 *   <li>{@code tokenizer.ggml.model = gpt2}: byte-level BPE with merges applied by rank after the
 *       pre-tokenizer named by {@code tokenizer.ggml.pre} (e.g. {@code llama-bpe}, {@code gpt-2},
 *       {@code qwen2}; see {@link #supportedPreTokenizers()}).
 * </ul>
 *
 * <p>Control, user-defined and unknown tokens are matched in the input text before tokenization,
 * longest first, as llama.cpp's {@code tokenizer_st_partition} does; with {@code parseSpecial}
 * false only user-defined tokens are. Token types come from {@code tokenizer.ggml.token_type};
 * end-of-generation tokens are detected by id and by text as llama.cpp detects them.
 *
 * <p>Internally every string is handled as bytes (UTF-8), as llama.cpp does; {@link
 * #encode(String, boolean, boolean)} encodes the Java string to UTF-8 first (an unpaired surrogate
 * becomes {@code '?'}).
 *
 * <p>Immutable and thread-safe; it keeps no reference to the {@link GgufModel} it was built from.
 */
public final class Tokenizer {
    /** The two tokenizer families. */
    public enum Kind {
        /** {@code tokenizer.ggml.model = llama}. */
        SENTENCEPIECE,
        /** {@code tokenizer.ggml.model = gpt2}. */
        BPE
    }

    // llama.cpp's llama_token_attr bits
    static final int ATTR_UNKNOWN = 1;
    static final int ATTR_UNUSED = 1 << 1;
    static final int ATTR_NORMAL = 1 << 2;
    static final int ATTR_CONTROL = 1 << 3;
    static final int ATTR_USER_DEFINED = 1 << 4;
    static final int ATTR_BYTE = 1 << 5;
    static final int ATTR_LSTRIP = 1 << 7;
    static final int ATTR_RSTRIP = 1 << 8;

    private static final String ESCAPED_SPACE = "\u00E2\u0096\u0081"; // "▁" as UTF-8 bytes
    private static final char MERGE_SEPARATOR = '\uFFFF'; // never a byte

    private final Kind kind;
    private final String preName;
    private final String[] text; // byte strings
    private final float[] score;
    private final int[] attr;
    private final Map<String, Integer> ids;
    private final Map<String, Integer> mergeRanks;
    private final PreTokenizer preTokenizer;
    private final int[] specialTokens; // longest text first
    private final BitSet eog;
    private final int bos;
    private final int eos;
    private final int eot;
    private final int unk;
    private final int pad;
    private final boolean addBos;
    private final boolean addEos;
    private final boolean addSpacePrefix;
    private final boolean cleanSpaces;
    private final boolean ignoreMerges;

    /**
     * Builds the tokenizer of a model. Reads everything it needs; the model may be closed afterwards.
     *
     * @throws GgufFormatException if required keys are missing or malformed
     * @throws UnsupportedOperationException if the tokenizer model or pre-tokenizer is not supported
     */
    public static Tokenizer fromGguf(GgufModel model) {
        return new Tokenizer(model);
    }

    private Tokenizer(GgufModel m) {
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
                kind = Kind.SENTENCEPIECE;
                defBos = 1;
                defEos = 2;
                defUnk = 0;
                spacePrefix = true;
                clean = false;
                bosByDefault = true;
                pre = "default";
            }
            case "gpt2" -> {
                kind = Kind.BPE;
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

        if (kind == Kind.BPE) {
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

    private static String utf8(String byteString) {
        return new String(Unicode.bytes(byteString), StandardCharsets.UTF_8);
    }

    // ---------------------------------------------------------------- properties

    public Kind kind() {
        return kind;
    }

    /** The pre-tokenizer name ({@code tokenizer.ggml.pre}; {@code default} for SentencePiece). */
    public String preTokenizer() {
        return preName;
    }

    /** Pre-tokenizer names accepted in {@code tokenizer.ggml.pre} for BPE vocabularies. */
    public static List<String> supportedPreTokenizers() {
        return BpePreset.supportedNames();
    }

    /** Number of tokens. */
    public int vocabSize() {
        return text.length;
    }

    /** Beginning-of-sequence id, or -1 if the vocabulary has none. */
    public int bosId() {
        return bos;
    }

    /** End-of-sequence id, or -1. */
    public int eosId() {
        return eos;
    }

    /** End-of-turn id, or -1. */
    public int eotId() {
        return eot;
    }

    /** Unknown-token id, or -1. */
    public int unkId() {
        return unk;
    }

    /** Padding id, or -1. */
    public int padId() {
        return pad;
    }

    /** Whether {@code encode(…, addSpecial = true, …)} prepends BOS (metadata, else llama.cpp's default). */
    public boolean addBos() {
        return addBos;
    }

    /** Whether {@code encode(…, addSpecial = true, …)} appends EOS. */
    public boolean addEos() {
        return addEos;
    }

    /** Whether generation should stop at this token (EOS, EOT, EOM and the texts llama.cpp treats so). */
    public boolean isEndOfGeneration(int id) {
        return id >= 0 && id < text.length && eog.get(id);
    }

    /** Whether this is a control token (not rendered by {@code decode(ids, false)}). */
    public boolean isControl(int id) {
        checkId(id);
        return (attr[id] & ATTR_CONTROL) != 0;
    }

    /** The token's vocabulary entry decoded as UTF-8 (e.g. {@code "▁Hello"}, {@code "ĠHello"}). */
    public String tokenText(int id) {
        checkId(id);
        return utf8(text[id]);
    }

    /** The id of the vocabulary entry with exactly this text, if any. */
    public OptionalInt tokenId(String tokenText) {
        Integer id = ids.get(Unicode.utf8Bytes(tokenText));
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    private void checkId(int id) {
        if (id < 0 || id >= text.length) {
            throw new IllegalArgumentException("token id " + id + " out of range [0, " + text.length + ")");
        }
    }

    // ---------------------------------------------------------------- encode

    /**
     * Token ids of {@code text}.
     *
     * @param addSpecial add BOS (and EOS) when the vocabulary asks for it ({@link #addBos()}, {@link
     *     #addEos()}), as llama.cpp's {@code add_special}
     * @param parseSpecial match control tokens (e.g. {@code <|eot_id|>}) written in the text; when
     *     false only user-defined tokens are matched, and control-token text is tokenized as text
     */
    public int[] encode(String text, boolean addSpecial, boolean parseSpecial) {
        String bytes = Unicode.utf8Bytes(text);
        List<int[]> fragments = partition(bytes, parseSpecial);
        IntList out = new IntList(bytes.length() / 3 + 4);
        if (addSpecial && addBos) {
            out.add(bos);
        }
        if (kind == Kind.SENTENCEPIECE) {
            boolean prevSpecial = true;
            for (int[] f : fragments) {
                if (f[0] >= 0) {
                    out.add(f[0]);
                    prevSpecial = true;
                    continue;
                }
                String t = bytes.substring(f[1], f[1] + f[2]);
                if (addSpacePrefix && prevSpecial) {
                    t = " " + t;
                }
                spmEncode(t.replace(" ", ESCAPED_SPACE), out);
                prevSpecial = false;
            }
        } else {
            for (int[] f : fragments) {
                if (f[0] >= 0) {
                    out.add(f[0]);
                } else {
                    for (String word : preTokenizer.words(bytes.substring(f[1], f[1] + f[2]))) {
                        bpeEncodeWord(word, out);
                    }
                }
            }
        }
        if (addSpecial && addEos) {
            out.add(eos);
        }
        return out.toArray();
    }

    /** Splits the text at special tokens: {@code {id, 0, 0}} for a token, {@code {-1, start, length}} for text. */
    private List<int[]> partition(String bytes, boolean parseSpecial) {
        List<int[]> frags = new ArrayList<>();
        if (bytes.isEmpty()) {
            return frags;
        }
        frags.add(new int[] {-1, 0, bytes.length()});
        for (int id : specialTokens) {
            int a = attr[id];
            if (!parseSpecial && (a & (ATTR_CONTROL | ATTR_UNKNOWN)) != 0) {
                continue;
            }
            String tok = text[id];
            List<int[]> next = new ArrayList<>(frags.size() + 2);
            boolean changed = false;
            for (int[] f : frags) {
                if (f[0] >= 0) {
                    next.add(f);
                    continue;
                }
                int from = f[1];
                int end = f[1] + f[2];
                while (true) {
                    int match = bytes.indexOf(tok, from);
                    if (match < 0 || match + tok.length() > end) {
                        break;
                    }
                    changed = true;
                    int leftEnd = match;
                    if ((a & ATTR_LSTRIP) != 0) {
                        while (leftEnd > from && isSpace(bytes.charAt(leftEnd - 1))) {
                            leftEnd--;
                        }
                    }
                    if (leftEnd > from) {
                        next.add(new int[] {-1, from, leftEnd - from});
                    }
                    next.add(new int[] {id, 0, 0});
                    from = match + tok.length();
                    if ((a & ATTR_RSTRIP) != 0) {
                        while (from < end && isSpace(bytes.charAt(from))) {
                            from++;
                        }
                    }
                }
                if (from < end) {
                    next.add(new int[] {-1, from, end - from});
                }
            }
            if (changed) {
                frags = next;
            }
        }
        return frags;
    }

    private static boolean isSpace(char c) {
        return c == ' ' || (c >= '\t' && c <= '\r');
    }

    private record SpmBigram(int left, int right, float score, int size) {}

    private static final Comparator<SpmBigram> SPM_ORDER =
            Comparator.comparingDouble((SpmBigram b) -> -b.score).thenComparingInt(SpmBigram::left);

    /** SentencePiece merges by score over UTF-8 characters, then byte fallback (llama.cpp's llm_tokenizer_spm). */
    private void spmEncode(String t, IntList out) {
        int n = 0;
        int[] start = new int[t.length()];
        int[] len = new int[t.length()];
        int[] prev = new int[t.length()];
        int[] next = new int[t.length()];
        for (int off = 0; off < t.length(); ) {
            int l = Math.min(Unicode.utf8Length(t.charAt(off)), t.length() - off);
            start[n] = off;
            len[n] = l;
            prev[n] = n - 1;
            off += l;
            next[n] = off == t.length() ? -1 : n + 1;
            n++;
        }
        if (n == 0) {
            return;
        }
        PriorityQueue<SpmBigram> queue = new PriorityQueue<>(SPM_ORDER);
        Map<String, Long> revMerge = new HashMap<>();
        for (int i = 1; i < n; i++) {
            spmTryBigram(t, start, len, i - 1, i, queue, revMerge);
        }
        while (!queue.isEmpty()) {
            SpmBigram b = queue.poll();
            int l = b.left;
            int r = b.right;
            if (len[l] == 0 || len[r] == 0 || len[l] + len[r] != b.size) {
                continue;
            }
            len[l] += len[r];
            len[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0) {
                prev[next[r]] = l;
            }
            spmTryBigram(t, start, len, prev[l], l, queue, revMerge);
            spmTryBigram(t, start, len, l, next[l], queue, revMerge);
        }
        for (int i = 0; i != -1; i = next[i]) {
            spmResegment(t, start, len, i, revMerge, out);
        }
    }

    private void spmTryBigram(
            String t,
            int[] start,
            int[] len,
            int l,
            int r,
            PriorityQueue<SpmBigram> queue,
            Map<String, Long> revMerge) {
        if (l == -1 || r == -1) {
            return;
        }
        String s = t.substring(start[l], start[l] + len[l] + len[r]);
        Integer id = ids.get(s);
        if (id == null) {
            return;
        }
        queue.add(new SpmBigram(l, r, score[id], s.length()));
        revMerge.put(s, ((long) l << 32) | (r & 0xFFFFFFFFL));
    }

    private void spmResegment(String t, int[] start, int[] len, int i, Map<String, Long> revMerge, IntList out) {
        String s = t.substring(start[i], start[i] + len[i]);
        Integer id = ids.get(s);
        if (id != null) {
            out.add(id);
            return;
        }
        Long p = revMerge.get(s);
        if (p == null) {
            for (int k = 0; k < s.length(); k++) {
                out.add(spmByteToken(s.charAt(k)));
            }
            return;
        }
        spmResegment(t, start, len, (int) (p >>> 32), revMerge, out);
        spmResegment(t, start, len, (int) (long) p, revMerge, out);
    }

    private int spmByteToken(int b) {
        Integer id = ids.get(String.format("<0x%02X>", b));
        if (id == null) {
            id = ids.get(String.valueOf((char) b));
        }
        if (id == null) {
            throw new IllegalStateException(String.format(
                    "vocabulary has neither <0x%02X> nor a single-byte token for byte 0x%02X (needed for byte fallback)",
                    b, b));
        }
        return id;
    }

    private record BpeBigram(int left, int right, int rank, int leftLen, int rightLen) {}

    private static final Comparator<BpeBigram> BPE_ORDER =
            Comparator.comparingInt(BpeBigram::rank).thenComparingInt(BpeBigram::left);

    /** Byte-level BPE of one pre-tokenized word: merges by rank (llama.cpp's llm_tokenizer_bpe_session). */
    private void bpeEncodeWord(String word, IntList out) {
        if (ignoreMerges) {
            Integer id = ids.get(word);
            if (id != null) {
                out.add(id);
                return;
            }
        }
        int cap = word.length();
        int[] start = new int[cap];
        int[] len = new int[cap];
        int[] prev = new int[cap];
        int[] next = new int[cap];
        int n = 0;
        for (int off = 0; off < word.length(); ) {
            int l = Math.min(word.length() - off, Unicode.utf8Length(word.charAt(off)));
            start[n] = off;
            len[n] = l;
            prev[n] = n - 1;
            off += l;
            next[n] = off == word.length() ? -1 : n + 1;
            n++;
        }
        PriorityQueue<BpeBigram> queue = new PriorityQueue<>(BPE_ORDER);
        for (int i = 1; i < n; i++) {
            bpeTryBigram(word, start, len, i - 1, i, queue);
        }
        while (!queue.isEmpty()) {
            BpeBigram b = queue.poll();
            int l = b.left;
            int r = b.right;
            // the pair is stale unless both symbols still have the lengths they had when it was queued
            if (len[l] != b.leftLen || len[r] != b.rightLen) {
                continue;
            }
            len[l] += len[r];
            len[r] = 0;
            next[l] = next[r];
            if (next[r] >= 0) {
                prev[next[r]] = l;
            }
            bpeTryBigram(word, start, len, prev[l], l, queue);
            bpeTryBigram(word, start, len, l, next[l], queue);
        }
        for (int i = 0; n > 0 && i != -1; i = next[i]) {
            String s = word.substring(start[i], start[i] + len[i]);
            Integer id = ids.get(s);
            if (id != null) {
                out.add(id);
            } else {
                for (int k = 0; k < s.length(); k++) {
                    Integer b = ids.get(String.valueOf(s.charAt(k)));
                    if (b != null) {
                        out.add(b);
                    }
                }
            }
        }
    }

    private void bpeTryBigram(String word, int[] start, int[] len, int l, int r, PriorityQueue<BpeBigram> queue) {
        if (l == -1 || r == -1) {
            return;
        }
        String key = new StringBuilder(len[l] + len[r] + 1)
                .append(word, start[l], start[l] + len[l])
                .append(MERGE_SEPARATOR)
                .append(word, start[r], start[r] + len[r])
                .toString();
        Integer rank = mergeRanks.get(key);
        if (rank != null) {
            queue.add(new BpeBigram(l, r, rank, len[l], len[r]));
        }
    }

    // ---------------------------------------------------------------- decode

    /**
     * The bytes token {@code id} stands for (possibly an incomplete UTF-8 sequence, e.g. one byte of a
     * multi-byte character): llama.cpp's {@code token_to_piece}. Control and unknown tokens yield
     * their text when {@code renderSpecial}, else nothing; user-defined tokens always their text.
     */
    public byte[] tokenPiece(int id, boolean renderSpecial) {
        checkId(id);
        return Unicode.bytes(piece(id, renderSpecial));
    }

    private String piece(int id, boolean special) {
        int a = attr[id];
        if (!special && (a & (ATTR_UNKNOWN | ATTR_CONTROL)) != 0) {
            return "";
        }
        String t = text[id];
        if ((a & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED)) != 0) {
            return t;
        }
        if ((a & ATTR_NORMAL) != 0) {
            return kind == Kind.SENTENCEPIECE ? t.replace(ESCAPED_SPACE, " ") : byteLevelDecode(t);
        }
        if ((a & ATTR_BYTE) != 0) {
            return String.valueOf((char) hexByte(t));
        }
        return "";
    }

    private static int hexByte(String t) {
        if (t.length() >= 5) {
            try {
                return Integer.parseInt(t.substring(3, 5), 16) & 0xFF;
            } catch (NumberFormatException e) {
                return 0;
            }
        }
        return 0;
    }

    private static String byteLevelDecode(String t) {
        StringBuilder sb = new StringBuilder(t.length());
        for (int cp : Unicode.codepoints(t, 0, t.length())) {
            int b = ByteLevel.byteOf(cp);
            if (b >= 0) {
                sb.append((char) b);
            } else {
                StringBuilder u = new StringBuilder();
                Unicode.appendUtf8(u, cp);
                sb.append("[UNK_BYTE_0x");
                for (int k = 0; k < u.length(); k++) {
                    sb.append(String.format("%02x", (int) u.charAt(k)));
                }
                sb.append(t).append(']');
            }
        }
        return sb.toString();
    }

    /** {@code decode(ids, true)}: like llama.cpp's {@code common_detokenize} with its defaults. */
    public String decode(int[] ids) {
        return decode(ids, true);
    }

    /** The text of {@code ids}, malformed UTF-8 replaced by U+FFFD; see {@link #decodeBytes}. */
    public String decode(int[] ids, boolean renderSpecial) {
        return new String(decodeBytes(ids, renderSpecial), StandardCharsets.UTF_8);
    }

    /**
     * The UTF-8 bytes of {@code ids} as llama.cpp's {@code detokenize} produces them (BOS/EOS kept):
     * pieces concatenated, the leading space of the first piece removed when a space prefix is
     * added on encoding, and for BPE vocabularies that ask for it the space before {@code ? ! . ,}
     * and some apostrophe contractions removed.
     */
    public byte[] decodeBytes(int[] ids, boolean renderSpecial) {
        StringBuilder sb = new StringBuilder();
        boolean removeSpace = addSpacePrefix;
        for (int id : ids) {
            checkId(id);
            String p = piece(id, renderSpecial);
            if (removeSpace && !p.isEmpty() && p.charAt(0) == ' ') {
                p = p.substring(1);
            }
            removeSpace = false;
            sb.append(p);
        }
        char[] t = sb.toString().toCharArray();
        int total = t.length;
        if (cleanSpaces) {
            total = cleanSpaces(t, total);
        }
        byte[] out = new byte[total];
        for (int i = 0; i < total; i++) {
            out[i] = (byte) t[i];
        }
        return out;
    }

    /** llama.cpp's three clean-up passes over the detokenized bytes; returns the new length. */
    private static int cleanSpaces(char[] text, int total) {
        int total1 = total;
        total = total > 0 ? 1 : 0;
        for (int i = 1; i < total1; i++) {
            char x = text[i];
            if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) {
                total--;
            }
            text[total++] = x;
        }
        int total2 = total;
        total = total > 0 ? 1 : 0;
        for (int i = 1; i < total2; i++) {
            char x = text[i];
            if (x == '\'' && i + 1 < total2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
                total--;
                text[++i] = '\0';
            }
            text[total++] = x;
        }
        int total3 = total;
        total = total > 0 ? 1 : 0;
        for (int i = 1; i < total3; i++) {
            char x = text[i];
            if (text[i - 1] == ' ' && x == '\'' && i + 1 < total3) {
                char x1 = text[i + 1];
                if (x1 == 's' || x1 == 'm') {
                    total--;
                } else if (x1 != 't' && x1 != 'd' && i + 2 < total3) {
                    char x2 = text[i + 2];
                    if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) {
                        total--;
                    }
                }
            }
            text[total++] = x;
        }
        return total;
    }

    @Override
    public String toString() {
        return "Tokenizer[" + kind + ", pre=" + preName + ", " + text.length + " tokens, bos=" + bos + ", eos=" + eos
                + ", addBos=" + addBos + "]";
    }
}
