package io.kvcache4j.eval.tokenizer;

/**
 * GPT-2's reversible byte ↔ unicode mapping used by byte-level BPE vocabularies: the printable
 * bytes {@code '!'..'~'}, {@code '¡'..'¬'} and {@code '®'..'ÿ'} stand for themselves, the other 68
 * bytes map, in increasing order, to U+0100, U+0101, … (so a space is {@code 'Ġ'} U+0120 and a
 * newline {@code 'Ċ'} U+010A).
 */
final class ByteLevel {
    private static final int[] BYTE_TO_CP = new int[256];
    private static final int[] CP_TO_BYTE = new int[324];
    /** For each byte, the UTF-8 of its mapped codepoint as a byte string. */
    private static final String[] BYTE_TO_UTF8 = new String[256];

    static {
        java.util.Arrays.fill(CP_TO_BYTE, -1);
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            int cp = printable ? b : 256 + n++;
            BYTE_TO_CP[b] = cp;
            CP_TO_BYTE[cp] = b;
            StringBuilder sb = new StringBuilder(2);
            Unicode.appendUtf8(sb, cp);
            BYTE_TO_UTF8[b] = sb.toString();
        }
    }

    private ByteLevel() {}

    /** The codepoint standing for byte {@code b}. */
    static int codepointOf(int b) {
        return BYTE_TO_CP[b & 0xFF];
    }

    /** The byte a codepoint stands for, or -1 if it stands for none. */
    static int byteOf(int cp) {
        return cp >= 0 && cp < CP_TO_BYTE.length ? CP_TO_BYTE[cp] : -1;
    }

    /** Appends the encoding of every byte of {@code bytes[from, to)} to {@code sb} (as UTF-8 bytes). */
    static void encode(CharSequence bytes, int from, int to, StringBuilder sb) {
        for (int i = from; i < to; i++) {
            sb.append(BYTE_TO_UTF8[bytes.charAt(i) & 0xFF]);
        }
    }
}
