package io.kvcache4j.api;

import java.util.Locale;

/**
 * How many tokens each (layer, KV head) may keep: a fraction of the prompt ({@code 0 < f < 1}) or a
 * whole number of tokens ({@code >= 1}), with the attention sinks (default 4) and the recent window
 * that every policy keeps. Immutable and thread-safe.
 *
 * <p><b>One rule.</b> A fraction becomes tokens against the prompt length by {@link #resolve}: {@code
 * max(1, round(f × promptTokens))}. The recent window, unless set, is a quarter of the token budget,
 * at least 1 and at most {@value #MAX_DEFAULT_RECENT_TOKENS} (SnapKV's observation window in its
 * published configurations). The library, {@code niah} and {@code generate} all go through this
 * class, so a budget means the same everywhere.
 *
 * <p><b>Validation.</b> A token budget must hold its sinks, its recent window and at least one more
 * token: {@code sinkTokens + recentTokens + 1 <= tokens}. Nothing is shrunk to fit; an impossible
 * budget throws {@link IllegalArgumentException} naming the values and the minimum.
 */
public final class Budget {
    /** Default attention sinks: the first 4 tokens (StreamingLLM's {@code start_size}). */
    public static final int DEFAULT_SINK_TOKENS = 4;
    /** Cap of the default recent window. */
    public static final int MAX_DEFAULT_RECENT_TOKENS = 32;

    private final double fraction; // > 0 for a fraction budget, 0 for a token budget
    private final int tokens; // >= 1 for a token budget, 0 for a fraction budget
    private final int sinkTokens;
    private final int recentTokens; // -1: the default rule

    private Budget(double fraction, int tokens, int sinkTokens, int recentTokens) {
        this.fraction = fraction;
        this.tokens = tokens;
        this.sinkTokens = sinkTokens;
        this.recentTokens = recentTokens;
        if (tokens > 0) {
            long need = (long) sinkTokens + recentTokens() + 1;
            if (tokens < need) {
                throw new IllegalArgumentException("budget of " + tokens + " tokens is too small: it must hold "
                        + sinkTokens + " sink tokens, a recent window of " + recentTokens() + " tokens and at least"
                        + " one more, so at least " + need + " tokens");
            }
        }
    }

    /** A budget of {@code tokens} tokens per (layer, KV head). */
    public static Budget tokens(int tokens) {
        if (tokens < 1) {
            throw new IllegalArgumentException(
                    "budget tokens must be in [1, " + Integer.MAX_VALUE + "], was " + tokens);
        }
        return new Budget(0, tokens, DEFAULT_SINK_TOKENS, -1);
    }

    /**
     * A budget of {@code tokens} tokens with {@code sinkTokens} sinks ({@code >= 0}) and a recent window
     * of {@code recentTokens} ({@code >= 0}).
     *
     * @throws IllegalArgumentException for a value out of its range, or a budget that cannot hold the
     *     sinks, the window and one more token
     */
    public static Budget tokens(int tokens, int sinkTokens, int recentTokens) {
        if (tokens < 1) {
            throw new IllegalArgumentException(
                    "budget tokens must be in [1, " + Integer.MAX_VALUE + "], was " + tokens);
        }
        checkSinks(sinkTokens);
        checkRecent(recentTokens);
        return new Budget(0, tokens, sinkTokens, recentTokens);
    }

    /** A budget of a fraction {@code 0 < fraction < 1} of the prompt. */
    public static Budget fraction(double fraction) {
        if (!(fraction > 0 && fraction < 1)) {
            throw new IllegalArgumentException("budget fraction must be in (0, 1), was " + fraction);
        }
        return new Budget(fraction, 0, DEFAULT_SINK_TOKENS, -1);
    }

    /**
     * A budget from a number: below 1 a fraction of the prompt, else whole tokens.
     *
     * @throws IllegalArgumentException for NaN, values {@code <= 0}, non-integers {@code >= 1} or more
     *     than {@link Integer#MAX_VALUE} tokens
     */
    public static Budget of(double value) {
        if (!(value > 0) || Double.isInfinite(value) || (value >= 1 && value != Math.floor(value))) {
            throw new IllegalArgumentException(
                    "budget must be a fraction in (0, 1) or a whole number of tokens >= 1, was " + text(value));
        }
        if (value < 1) {
            return fraction(value);
        }
        if (value > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(
                    "budget tokens must be in [1, " + Integer.MAX_VALUE + "], was " + text(value));
        }
        return tokens((int) value);
    }

    /** Parses the command-line form: {@code 0.1} (a fraction) or {@code 2048} (tokens). */
    public static Budget parse(String text) {
        double value;
        try {
            value = Double.parseDouble(text.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(
                    "budget must be a fraction in (0, 1) or a whole number of tokens >= 1, was '" + text + "'");
        }
        return of(value);
    }

    /** The same budget with {@code sinkTokens} sinks ({@code >= 0}). */
    public Budget withSinkTokens(int sinkTokens) {
        checkSinks(sinkTokens);
        return new Budget(fraction, tokens, sinkTokens, recentTokens);
    }

    /**
     * The same budget with a recent window of {@code recentTokens} ({@code >= 0}; 0: no protected
     * window) instead of the default rule.
     */
    public Budget withRecentTokens(int recentTokens) {
        checkRecent(recentTokens);
        return new Budget(fraction, tokens, sinkTokens, recentTokens);
    }

    private static void checkSinks(int sinkTokens) {
        if (sinkTokens < 0) {
            throw new IllegalArgumentException(
                    "sinkTokens must be in [0, " + Integer.MAX_VALUE + "], was " + sinkTokens);
        }
    }

    private static void checkRecent(int recentTokens) {
        if (recentTokens < 0) {
            throw new IllegalArgumentException(
                    "recentTokens must be in [0, " + Integer.MAX_VALUE + "], was " + recentTokens);
        }
    }

    /** Whether this is a fraction of the prompt (resolve it before asking for tokens). */
    public boolean isFraction() {
        return fraction > 0;
    }

    /** The fraction of the prompt; only for a fraction budget. */
    public double fraction() {
        if (!isFraction()) {
            throw new IllegalStateException("budget of " + tokens + " tokens is not a fraction");
        }
        return fraction;
    }

    /**
     * This budget in tokens for a prompt of {@code promptTokens}: {@code max(1, round(f ×
     * promptTokens))} for a fraction, itself for a token budget.
     */
    public Budget resolve(int promptTokens) {
        if (promptTokens < 1) {
            throw new IllegalArgumentException(
                    "promptTokens must be in [1, " + Integer.MAX_VALUE + "], was " + promptTokens);
        }
        if (!isFraction()) {
            return this;
        }
        int t = (int) Math.max(1, Math.round(fraction * promptTokens));
        return new Budget(0, t, sinkTokens, recentTokens);
    }

    /**
     * This budget, if it counts tokens.
     *
     * @throws IllegalArgumentException for a fraction budget, saying to resolve it against the prompt
     *     length first
     */
    public Budget requireTokens() {
        if (isFraction()) {
            throw new IllegalArgumentException("budget " + this
                    + " is a fraction of the prompt; resolve it against the prompt length first (Budget.resolve)");
        }
        return this;
    }

    /** Tokens per (layer, KV head), sinks and recent window included. */
    public int tokens() {
        if (isFraction()) {
            throw new IllegalStateException(
                    "budget " + this + " is a fraction of the prompt; resolve it against the prompt length first");
        }
        return tokens;
    }

    /** Leading positions that are never evicted. */
    public int sinkTokens() {
        return sinkTokens;
    }

    /** Newest tokens that are never evicted: as set, or a quarter of the tokens in [1, 32]. */
    public int recentTokens() {
        if (recentTokens >= 0) {
            return recentTokens;
        }
        if (isFraction()) {
            throw new IllegalStateException("the default recent window of budget " + this
                    + " depends on the prompt length; resolve the budget first");
        }
        return Math.max(1, Math.min(MAX_DEFAULT_RECENT_TOKENS, tokens / 4));
    }

    /** The command-line form of the amount ({@link #parse} reads it back), e.g. {@code 0.1} or {@code 2048}. */
    @Override
    public String toString() {
        return isFraction() ? text(fraction) : Integer.toString(tokens);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Budget b
                && Double.compare(b.fraction, fraction) == 0
                && b.tokens == tokens
                && b.sinkTokens == sinkTokens
                && b.recentTokens == recentTokens;
    }

    @Override
    public int hashCode() {
        return Double.hashCode(fraction) * 31 * 31 * 31 + tokens * 31 * 31 + sinkTokens * 31 + recentTokens;
    }

    private static String text(double v) {
        return v == Math.floor(v) && !Double.isInfinite(v) && Math.abs(v) < 1e15
                ? Long.toString((long) v)
                : String.format(Locale.ROOT, "%s", v);
    }
}
