package io.kvcache4j.eval.tokenizer;

import io.kvcache4j.eval.gguf.GgufFormatException;
import io.kvcache4j.eval.gguf.GgufModel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

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

    static final int ATTR_CONTROL = Vocabulary.ATTR_CONTROL;
    static final int ATTR_USER_DEFINED = Vocabulary.ATTR_USER_DEFINED;
    static final int ATTR_UNKNOWN = Vocabulary.ATTR_UNKNOWN;
    static final int ATTR_BYTE = Vocabulary.ATTR_BYTE;
    static final int ATTR_LSTRIP = Vocabulary.ATTR_LSTRIP;
    static final int ATTR_RSTRIP = Vocabulary.ATTR_RSTRIP;
    static final int ATTR_NORMAL = Vocabulary.ATTR_NORMAL;
    private static final String ESCAPED_SPACE = Vocabulary.ESCAPED_SPACE;

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
    private final SpmEncoder spm;
    private final BpeEncoder bpe;

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
        Vocabulary v = new Vocabulary(m);
        this.kind = v.kind;
        this.preName = v.preName;
        this.text = v.text;
        this.score = v.score;
        this.attr = v.attr;
        this.ids = v.ids;
        this.mergeRanks = v.mergeRanks;
        this.preTokenizer = v.preTokenizer;
        this.specialTokens = v.specialTokens;
        this.eog = v.eog;
        this.bos = v.bos;
        this.eos = v.eos;
        this.eot = v.eot;
        this.unk = v.unk;
        this.pad = v.pad;
        this.addBos = v.addBos;
        this.addEos = v.addEos;
        this.addSpacePrefix = v.addSpacePrefix;
        this.cleanSpaces = v.cleanSpaces;
        this.ignoreMerges = v.ignoreMerges;
        this.spm = kind == Kind.SENTENCEPIECE ? new SpmEncoder(v) : null;
        this.bpe = kind == Kind.BPE ? new BpeEncoder(v) : null;
    }

    private static String utf8(String byteString) {
        return Vocabulary.utf8(byteString);
    }

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
                spm.encode(t.replace(" ", ESCAPED_SPACE), out);
                prevSpecial = false;
            }
        } else {
            for (int[] f : fragments) {
                if (f[0] >= 0) {
                    out.add(f[0]);
                } else {
                    for (String word : preTokenizer.words(bytes.substring(f[1], f[1] + f[2]))) {
                        bpe.encodeWord(word, out);
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
