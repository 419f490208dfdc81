package io.kvcache4j.eval.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Splits text into words before byte-level BPE, as llama.cpp's {@code unicode_regex_split} does: a
 * chain of regexes, each splitting every piece the previous one produced (a piece is never merged
 * with its neighbours; text between matches forms pieces of its own), then every word encoded byte
 * by byte with {@link ByteLevel}.
 *
 * <p>The GPT-2 and Llama-3 expressions run as hand-written scanners with llama.cpp's exact
 * semantics ({@link Gpt2Scanner}, {@link Llama3Scanner}); any other expression runs with {@link
 * java.util.regex} over a "collapsed" copy of the text in which each non-ASCII codepoint is replaced
 * by one marker char for its class (letter, number, punctuation, accent mark, symbol, other;
 * non-ASCII whitespace by U+000B) and each {@code \p{…}} in the expression by a class of that marker
 * plus the ASCII members llama.cpp assigns to it. {@code \s} then matches exactly the White_Space
 * codepoints, as in llama.cpp.
 *
 * <p>Immutable and thread-safe.
 */
final class PreTokenizer {
    static final String GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
    static final String LLAMA3 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
            + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String LLAMA3_ORIGINAL = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
            + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    static final String QWEN2 = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
            + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

    /** One step of the chain: splits each piece (given as codepoint counts) further. */
    interface Splitter {
        IntList split(int[] cps, char[] collapsed, IntList pieces);

        default boolean needsCollapsed() {
            return false;
        }
    }

    private final List<String> expressions;
    private final List<Splitter> chain;
    private final boolean needsCollapsed;

    private PreTokenizer(List<String> expressions, List<Splitter> chain) {
        this.expressions = List.copyOf(expressions);
        this.chain = List.copyOf(chain);
        this.needsCollapsed = chain.stream().anyMatch(Splitter::needsCollapsed);
    }

    /** A pre-tokenizer for llama.cpp's list of expressions (in llama.cpp's regex dialect). */
    static PreTokenizer of(List<String> expressions) {
        List<Splitter> chain = new ArrayList<>();
        for (String e : expressions) {
            if (e.equals(GPT2)) {
                chain.add((cps, collapsed, pieces) -> new Gpt2Scanner().run(cps, pieces));
            } else if (e.equals(LLAMA3) || e.equals(LLAMA3_ORIGINAL)) {
                chain.add((cps, collapsed, pieces) -> new Llama3Scanner().run(cps, pieces));
            } else {
                chain.add(new RegexSplitter(e));
            }
        }
        return new PreTokenizer(expressions, chain);
    }

    List<String> expressions() {
        return expressions;
    }

    /**
     * Splits a byte string (UTF-8) into words, each returned as the byte string of its byte-level
     * encoding.
     */
    List<String> words(String text) {
        int[] cps = Unicode.codepoints(text, 0, text.length());
        IntList pieces = new IntList(1);
        if (cps.length > 0) {
            pieces.add(cps.length);
        }
        char[] collapsed = needsCollapsed ? collapse(cps) : null;
        for (Splitter s : chain) {
            pieces = s.split(cps, collapsed, pieces);
        }
        List<String> words = new ArrayList<>(pieces.size());
        StringBuilder utf8 = new StringBuilder();
        StringBuilder word = new StringBuilder();
        int at = 0;
        for (int p = 0; p < pieces.size(); p++) {
            int len = pieces.get(p);
            utf8.setLength(0);
            for (int i = at; i < at + len; i++) {
                Unicode.appendUtf8(utf8, cps[i]);
            }
            at += len;
            word.setLength(0);
            ByteLevel.encode(utf8, 0, utf8.length(), word);
            words.add(word.toString());
        }
        return words;
    }

    static final char COLLAPSED_OTHER = '\u00D0';
    static final char COLLAPSED_NUMBER = '\u00D1';
    static final char COLLAPSED_LETTER = '\u00D2';
    static final char COLLAPSED_PUNCTUATION = '\u00D3';
    static final char COLLAPSED_ACCENT_MARK = '\u00D4';
    static final char COLLAPSED_SYMBOL = '\u00D5';

    static char[] collapse(int[] cps) {
        char[] c = new char[cps.length];
        for (int i = 0; i < cps.length; i++) {
            int cp = cps[i];
            if (cp < 128) {
                c[i] = (char) cp;
            } else if (Unicode.isWhitespace(cp)) {
                c[i] = '\u000B';
            } else {
                c[i] = switch (Unicode.category(cp)) {
                    case Unicode.NUMBER -> COLLAPSED_NUMBER;
                    case Unicode.LETTER -> COLLAPSED_LETTER;
                    case Unicode.PUNCTUATION -> COLLAPSED_PUNCTUATION;
                    case Unicode.ACCENT_MARK -> COLLAPSED_ACCENT_MARK;
                    case Unicode.SYMBOL -> COLLAPSED_SYMBOL;
                    default -> COLLAPSED_OTHER;
                };
            }
        }
        return c;
    }

    /**
     * Rewrites a llama.cpp expression for the collapsed text: each {@code \p{X}} becomes the class
     * content for X (wrapped in brackets when outside a bracket expression), as llama.cpp rewrites
     * it. The ASCII members are llama.cpp's (e.g. '~' is in neither {@code \p{P}} nor {@code \p{S}}).
     */
    static String collapseExpression(String e) {
        StringBuilder out = new StringBuilder(e.length() + 32);
        boolean inside = false;
        for (int i = 0; i < e.length(); i++) {
            char c = e.charAt(i);
            if (c == '[' && (i == 0 || e.charAt(i - 1) != '\\')) {
                out.append('[');
                inside = true;
                continue;
            }
            if (inside && c == ']' && e.charAt(i - 1) != '\\') {
                out.append(']');
                inside = false;
                continue;
            }
            if (c == '\\' && i + 3 < e.length() && e.charAt(i + 1) == 'p' && e.charAt(i + 2) == '{') {
                int close = e.indexOf('}', i + 3);
                if (close >= 0 && close <= i + 10) {
                    String members = classMembers(e.substring(i, close + 1));
                    if (members != null) {
                        out.append(inside ? "" : "[").append(members).append(inside ? "" : "]");
                        i = close;
                        continue;
                    }
                }
            }
            if (c > 127) {
                throw new IllegalArgumentException(
                        "pre-tokenizer expression with non-ASCII characters is not supported: " + e);
            }
            out.append(c);
        }
        return out.toString();
    }

    private static String classMembers(String property) {
        return switch (property) {
            case "\\p{N}" -> "\\x{D1}0-9";
            case "\\p{L}", "\\p{Lu}", "\\p{Ll}", "\\p{Lt}", "\\p{Lm}", "\\p{Lo}" -> "\\x{D2}A-Za-z";
            case "\\p{P}" -> "\\x{D3}!-#%-*,-/:-;?-@\\[-\\]_\\{\\}";
            case "\\p{M}" -> "\\x{D4}";
            case "\\p{S}" -> "\\x{D5}\\$\\+<->\\^`\\|";
            default -> null;
        };
    }

    /** Any expression, by java.util.regex over the collapsed text. */
    static final class RegexSplitter implements Splitter {
        private final Pattern pattern;

        RegexSplitter(String expression) {
            this.pattern = Pattern.compile(collapseExpression(expression));
        }

        @Override
        public boolean needsCollapsed() {
            return true;
        }

        @Override
        public IntList split(int[] cps, char[] collapsed, IntList pieces) {
            IntList out = new IntList(pieces.size() * 4);
            Matcher m = pattern.matcher(java.nio.CharBuffer.wrap(collapsed));
            int start = 0;
            for (int p = 0; p < pieces.size(); p++) {
                int end = start + pieces.get(p);
                m.region(start, end);
                int prev = start;
                while (m.find()) {
                    if (m.start() > prev) {
                        out.add(m.start() - prev);
                    }
                    if (m.end() > m.start()) {
                        out.add(m.end() - m.start());
                    }
                    prev = m.end();
                }
                if (prev < end) {
                    out.add(end - prev);
                }
                start = end;
            }
            return out;
        }

        @Override
        public String toString() {
            return pattern.pattern();
        }
    }

    /**
     * One scan over the pieces of one text (a fresh instance per call). Positions outside the
     * current piece have flags 0 and codepoint -1.
     */
    private abstract static class Scanner {
        int[] cps;
        int from;
        int to;
        int prevEnd;
        IntList out;

        int cp(int pos) {
            return pos >= from && pos < to ? cps[pos] : -1;
        }

        int flags(int pos) {
            return pos >= from && pos < to ? Unicode.flags(cps[pos]) : 0;
        }

        static boolean has(int flags, int bit) {
            return (flags & bit) != 0;
        }

        static boolean isOther(int flags) {
            return flags != 0 && (flags & (Unicode.WHITESPACE | Unicode.LETTER | Unicode.NUMBER)) == 0;
        }

        /** Ends the current word at {@code end}; returns its length. */
        int emit(int end) {
            int len = end - prevEnd;
            if (len > 0) {
                out.add(len);
            }
            prevEnd = end;
            return len;
        }

        final IntList run(int[] cps, IntList pieces) {
            this.cps = cps;
            this.out = new IntList(pieces.size() * 4);
            int start = 0;
            for (int p = 0; p < pieces.size(); p++) {
                from = start;
                to = start + pieces.get(p);
                prevEnd = from;
                scan();
                start = to;
            }
            return out;
        }

        abstract void scan();
    }

    /**
     * GPT-2's {@code 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)}, with
     * trailing whitespace of a piece kept as one word, as llama.cpp's scanner does.
     */
    static final class Gpt2Scanner extends Scanner {
        @Override
        void scan() {
            int pos = from;
            while (pos < to) {
                int c = cp(pos);
                int f = flags(pos);
                if (c == '\'' && pos + 1 < to) {
                    int n = cp(pos + 1);
                    if (n == 's' || n == 't' || n == 'm' || n == 'd') {
                        pos += emit(pos + 2);
                        continue;
                    }
                    if (pos + 2 < to) {
                        int nn = cp(pos + 2);
                        if ((n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l')) {
                            pos += emit(pos + 3);
                            continue;
                        }
                    }
                }
                int f2 = c == ' ' ? flags(pos + 1) : f;
                if (has(f2, Unicode.LETTER)) {
                    pos += c == ' ' ? 1 : 0;
                    while (has(flags(pos), Unicode.LETTER)) {
                        pos++;
                    }
                    emit(pos);
                    continue;
                }
                if (has(f2, Unicode.NUMBER)) {
                    pos += c == ' ' ? 1 : 0;
                    while (has(flags(pos), Unicode.NUMBER)) {
                        pos++;
                    }
                    emit(pos);
                    continue;
                }
                if (isOther(f2)) {
                    pos += c == ' ' ? 1 : 0;
                    while (isOther(flags(pos))) {
                        pos++;
                    }
                    emit(pos);
                    continue;
                }
                int ws = 0;
                while (has(flags(pos + ws), Unicode.WHITESPACE)) {
                    ws++;
                }
                if (ws > 1 && cp(pos + ws) != -1) {
                    pos += ws - 1;
                    emit(pos);
                    continue;
                }
                if (ws > 0) {
                    pos += ws;
                    emit(pos);
                    continue;
                }
                emit(++pos);
            }
        }
    }

    /**
     * Llama 3's {@code (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
     * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+}, scanned as llama.cpp scans it.
     */
    static final class Llama3Scanner extends Scanner {
        private static int lower(int c) {
            return c >= 0 ? Character.toLowerCase(c) : c;
        }

        @Override
        void scan() {
            int pos = from;
            while (pos < to) {
                int c = cp(pos);
                int f = flags(pos);
                if (c == '\'' && pos + 1 < to) {
                    int n = lower(cp(pos + 1));
                    if (n == 's' || n == 't' || n == 'm' || n == 'd') {
                        pos += emit(pos + 2);
                        continue;
                    }
                    if (pos + 2 < to) {
                        int nn = lower(cp(pos + 2));
                        if ((n == 'r' && nn == 'e') || (n == 'v' && nn == 'e') || (n == 'l' && nn == 'l')) {
                            pos += emit(pos + 3);
                            continue;
                        }
                    }
                }
                if (!(c == '\r' || c == '\n' || has(f, Unicode.NUMBER))) {
                    if (has(f, Unicode.LETTER) || has(flags(pos + 1), Unicode.LETTER)) {
                        pos++;
                        while (has(flags(pos), Unicode.LETTER)) {
                            pos++;
                        }
                        emit(pos);
                        continue;
                    }
                }
                if (has(f, Unicode.NUMBER)) {
                    int ini = pos;
                    while (has(flags(pos), Unicode.NUMBER)) {
                        if (++pos - ini >= 3) {
                            emit(pos);
                            ini = pos;
                        }
                    }
                    emit(pos);
                    continue;
                }
                int f2 = c == ' ' ? flags(pos + 1) : f;
                // llama.cpp tests the current codepoint's flags (not f2) for being non-empty here
                if ((f2 & (Unicode.WHITESPACE | Unicode.LETTER | Unicode.NUMBER)) == 0 && f != 0) {
                    pos += c == ' ' ? 1 : 0;
                    while (isOther(f2)) {
                        f2 = flags(++pos);
                    }
                    int c2 = cp(pos);
                    while (c2 == '\r' || c2 == '\n') {
                        c2 = cp(++pos);
                    }
                    emit(pos);
                    continue;
                }
                int ws = 0;
                int lastLineEnd = -1;
                while (has(flags(pos + ws), Unicode.WHITESPACE)) {
                    int c2 = cp(pos + ws);
                    if (c2 == '\r' || c2 == '\n') {
                        lastLineEnd = pos + ws + 1;
                    }
                    ws++;
                }
                if (lastLineEnd >= 0) {
                    pos = lastLineEnd;
                    emit(pos);
                    continue;
                }
                if (ws > 1 && cp(pos + ws) != -1) {
                    pos += ws - 1;
                    emit(pos);
                    continue;
                }
                if (ws > 0) {
                    pos += ws;
                    emit(pos);
                    continue;
                }
                emit(++pos);
            }
        }
    }
}
