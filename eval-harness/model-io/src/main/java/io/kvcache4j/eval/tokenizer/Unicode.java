package io.kvcache4j.eval.tokenizer;

/**
 * Codepoint classes as llama.cpp's tokenizers see them, and UTF-8 helpers over "byte strings"
 * (Java strings whose chars are bytes 0..255, the representation the tokenizers work on, so that
 * vocabulary entries and inputs are compared byte for byte as llama.cpp compares its
 * {@code std::string}s).
 *
 * <p>Categories follow the Unicode general category as given by {@link Character#getType} (the
 * regex classes {@code \p{L}}, {@code \p{N}}, {@code \p{P}}, {@code \p{S}}, {@code \p{M}}, {@code
 * \p{Z}}, {@code \p{C}} including unassigned codepoints, which is how llama.cpp's table was
 * generated); whitespace is the Unicode {@code White_Space} property (which, unlike {@link
 * Character#isWhitespace}, includes U+0085 and U+00A0 and excludes U+001C..U+001F).
 */
final class Unicode {
    static final int NUMBER = 1 << 1;
    static final int LETTER = 1 << 2;
    static final int SEPARATOR = 1 << 3;
    static final int ACCENT_MARK = 1 << 4;
    static final int PUNCTUATION = 1 << 5;
    static final int SYMBOL = 1 << 6;
    static final int CONTROL = 1 << 7;
    /** Not a category: set in {@link #flags} for White_Space codepoints. */
    static final int WHITESPACE = 1 << 8;

    static final int MAX_CODEPOINT = 0x10FFFF;
    static final int REPLACEMENT = 0xFFFD;

    private Unicode() {}

    /** The category bit of {@code cp} (one of NUMBER..CONTROL), or 0 outside the codepoint range. */
    static int category(int cp) {
        if (cp < 0 || cp > MAX_CODEPOINT) {
            return 0;
        }
        return switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER,
                    Character.LOWERCASE_LETTER,
                    Character.TITLECASE_LETTER,
                    Character.MODIFIER_LETTER,
                    Character.OTHER_LETTER -> LETTER;
            case Character.NON_SPACING_MARK, Character.ENCLOSING_MARK, Character.COMBINING_SPACING_MARK -> ACCENT_MARK;
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> NUMBER;
            case Character.SPACE_SEPARATOR, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR -> SEPARATOR;
            case Character.CONNECTOR_PUNCTUATION,
                    Character.DASH_PUNCTUATION,
                    Character.START_PUNCTUATION,
                    Character.END_PUNCTUATION,
                    Character.INITIAL_QUOTE_PUNCTUATION,
                    Character.FINAL_QUOTE_PUNCTUATION,
                    Character.OTHER_PUNCTUATION -> PUNCTUATION;
            case Character.MATH_SYMBOL, Character.CURRENCY_SYMBOL, Character.MODIFIER_SYMBOL, Character.OTHER_SYMBOL ->
                SYMBOL;
            default -> CONTROL; // Cc, Cf, Co, Cs and unassigned (Cn)
        };
    }

    /** Unicode White_Space. */
    static boolean isWhitespace(int cp) {
        return (cp >= 0x09 && cp <= 0x0D)
                || cp == 0x20
                || cp == 0x85
                || cp == 0xA0
                || cp == 0x1680
                || (cp >= 0x2000 && cp <= 0x200A)
                || cp == 0x2028
                || cp == 0x2029
                || cp == 0x202F
                || cp == 0x205F
                || cp == 0x3000;
    }

    /** Category bit plus {@link #WHITESPACE}; 0 for positions outside the text ({@code cp < 0}). */
    static int flags(int cp) {
        int f = category(cp);
        return f != 0 && isWhitespace(cp) ? f | WHITESPACE : f;
    }

    /** Bytes in the UTF-8 sequence that starts with lead byte {@code b} (1 for stray continuation bytes). */
    static int utf8Length(int b) {
        int hi = (b & 0xFF) >>> 4;
        return hi < 0xC ? 1 : hi < 0xE ? 2 : hi == 0xE ? 3 : 4;
    }

    /**
     * Decodes a byte string into codepoints the way llama.cpp does: a malformed sequence yields
     * U+FFFD and skips one byte.
     */
    static int[] codepoints(String bytes, int from, int to) {
        int[] out = new int[to - from];
        int n = 0;
        int i = from;
        while (i < to) {
            int b0 = bytes.charAt(i);
            if (b0 < 0x80) {
                out[n++] = b0;
                i++;
                continue;
            }
            int len;
            int cp;
            if ((b0 & 0x40) == 0) {
                len = 0;
                cp = 0;
            } else if ((b0 & 0x20) == 0) {
                len = 2;
                cp = b0 & 0x1F;
            } else if ((b0 & 0x10) == 0) {
                len = 3;
                cp = b0 & 0x0F;
            } else if ((b0 & 0x08) == 0) {
                len = 4;
                cp = b0 & 0x07;
            } else {
                len = 0;
                cp = 0;
            }
            boolean ok = len > 0 && i + len <= to;
            for (int k = 1; ok && k < len; k++) {
                int b = bytes.charAt(i + k);
                if ((b & 0xC0) != 0x80) {
                    ok = false;
                } else {
                    cp = (cp << 6) | (b & 0x3F);
                }
            }
            if (ok) {
                out[n++] = cp;
                i += len;
            } else {
                out[n++] = REPLACEMENT;
                i++;
            }
        }
        return n == out.length ? out : java.util.Arrays.copyOf(out, n);
    }

    /** Appends the UTF-8 bytes of {@code cp} as chars 0..255. */
    static void appendUtf8(StringBuilder sb, int cp) {
        if (cp < 0x80) {
            sb.append((char) cp);
        } else if (cp < 0x800) {
            sb.append((char) (0xC0 | (cp >>> 6))).append((char) (0x80 | (cp & 0x3F)));
        } else if (cp < 0x10000) {
            sb.append((char) (0xE0 | (cp >>> 12)))
                    .append((char) (0x80 | ((cp >>> 6) & 0x3F)))
                    .append((char) (0x80 | (cp & 0x3F)));
        } else {
            sb.append((char) (0xF0 | (cp >>> 18)))
                    .append((char) (0x80 | ((cp >>> 12) & 0x3F)))
                    .append((char) (0x80 | ((cp >>> 6) & 0x3F)))
                    .append((char) (0x80 | (cp & 0x3F)));
        }
    }

    /** The byte string of a Java string's UTF-8 encoding (unpaired surrogates become '?'). */
    static String utf8Bytes(String text) {
        return new String(
                text.getBytes(java.nio.charset.StandardCharsets.UTF_8), java.nio.charset.StandardCharsets.ISO_8859_1);
    }

    /** A byte string from raw bytes. */
    static String byteString(byte[] b) {
        return new String(b, java.nio.charset.StandardCharsets.ISO_8859_1);
    }

    /** The raw bytes of a byte string. */
    static byte[] bytes(String byteString) {
        return byteString.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1);
    }
}
