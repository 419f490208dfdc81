package io.kvcache4j.eval.tokenizer;

import java.util.Comparator;
import java.util.Map;
import java.util.PriorityQueue;

/**
 * Byte-level BPE of one pre-tokenized word (llama.cpp's {@code llm_tokenizer_bpe_session}): merges applied
 * by rank.
 * Immutable and thread-safe.
 */
final class BpeEncoder {
    private final Map<String, Integer> ids;
    private final Map<String, Integer> mergeRanks;
    private final boolean ignoreMerges;

    BpeEncoder(Vocabulary v) {
        this.ids = v.ids;
        this.mergeRanks = v.mergeRanks;
        this.ignoreMerges = v.ignoreMerges;
    }

    private record BpeBigram(int left, int right, int rank, int leftLen, int rightLen) {}

    private static final Comparator<BpeBigram> BPE_ORDER =
            Comparator.comparingInt(BpeBigram::rank).thenComparingInt(BpeBigram::left);

    /** Byte-level BPE of one pre-tokenized word: merges by rank (llama.cpp's llm_tokenizer_bpe_session). */
    void encodeWord(String word, IntList out) {
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
                .append(Vocabulary.MERGE_SEPARATOR)
                .append(word, start[r], start[r] + len[r])
                .toString();
        Integer rank = mergeRanks.get(key);
        if (rank != null) {
            queue.add(new BpeBigram(l, r, rank, len[l], len[r]));
        }
    }

    // ---------------------------------------------------------------- decode

}
