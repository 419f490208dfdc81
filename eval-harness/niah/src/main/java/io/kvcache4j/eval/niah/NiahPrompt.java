package io.kvcache4j.eval.niah;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * One NIAH prompt of exactly {@code length} tokens: BOS, haystack sentences from a random start with
 * the needle at the sentence boundary nearest the requested depth, then the question. The context
 * (BOS + haystack with needle) and the question are kept apart so that query-agnostic runs can
 * compress the context before the question arrives.
 *
 * @param context BOS + haystack with the needle
 * @param question the question's tokens
 * @param depth realised relative depth of the needle in the haystack (0 = first, 1 = last)
 * @param needleStart index in {@code context} of the needle's first token
 */
public record NiahPrompt(int[] context, int[] question, double depth, int needleStart) {

    public int length() {
        return context.length + question.length;
    }

    /** Builds a prompt; the haystack is cut at a token boundary at its end to hit the length exactly. */
    public static NiahPrompt build(
            Haystack haystack, TextCodec codec, Needle needle, int length, double depth, SplittableRandom random) {
        if (!(depth >= 0 && depth <= 1)) {
            throw new IllegalArgumentException("depth must be in [0, 1], was " + depth);
        }
        boolean atStart = depth == 0;
        int[] question = codec.encode(needle.question());
        int[] needleTokens = codec.encode(atStart ? needle.sentence() : " " + needle.sentence());
        int budget = length - 1 - question.length - needleTokens.length;
        if (budget < 8) {
            throw new IllegalArgumentException("length " + length + " is too short for this needle and question ("
                    + (1 + question.length + needleTokens.length + 8) + " tokens at least)");
        }
        // Haystack: whole sentences from a random start; the last one truncated to fit exactly.
        int[] hay = new int[budget];
        int[] boundaries = new int[budget + 1];
        int nb = 0;
        int filled = 0;
        int s = random.nextInt(haystack.sentenceCount());
        while (filled < budget) {
            int[] t = haystack.sentenceTokens(s++);
            int n = Math.min(t.length, budget - filled);
            System.arraycopy(t, 0, hay, filled, n);
            filled += n;
            if (n == t.length && filled < budget) {
                boundaries[nb++] = filled;
            }
        }
        int at;
        if (atStart) {
            at = 0;
        } else if (depth == 1 || nb == 0) {
            at = budget;
        } else {
            double target = depth * budget;
            at = budget;
            double best = Math.abs(budget - target);
            for (int i = 0; i < nb; i++) {
                double dist = Math.abs(boundaries[i] - target);
                if (dist < best) {
                    best = dist;
                    at = boundaries[i];
                }
            }
        }
        int[] context = new int[1 + budget + needleTokens.length];
        context[0] = codec.bosId();
        System.arraycopy(hay, 0, context, 1, at);
        System.arraycopy(needleTokens, 0, context, 1 + at, needleTokens.length);
        System.arraycopy(hay, at, context, 1 + at + needleTokens.length, budget - at);
        return new NiahPrompt(context, question, budget == 0 ? 0 : at / (double) budget, 1 + at);
    }

    /** Context followed by the question. */
    public int[] all() {
        int[] a = Arrays.copyOf(context, length());
        System.arraycopy(question, 0, a, context.length, question.length);
        return a;
    }
}
