package io.kvcache4j.eval.tokenizer;

import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * SentencePiece encoding of one run of text (llama.cpp's {@code llm_tokenizer_spm}): merges by score over UTF-8
 * characters, re-segmentation through the merge record, byte fallback to {@code <0xXX>} tokens.
 * Immutable and thread-safe.
 */
final class SpmEncoder {
    private final float[] score;
    private final Map<String, Integer> ids;

    SpmEncoder(Vocabulary v) {
        this.score = v.score;
        this.ids = v.ids;
    }

    private record SpmBigram(int left, int right, float score, int size) {}

    private static final Comparator<SpmBigram> SPM_ORDER =
            Comparator.comparingDouble((SpmBigram b) -> -b.score).thenComparingInt(SpmBigram::left);

    /** SentencePiece merges by score over UTF-8 characters, then byte fallback (llama.cpp's llm_tokenizer_spm). */
    void encode(String t, IntList out) {
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
}
