package io.kvcache4j.eval.niah;

import io.kvcache4j.api.Budget;
import java.nio.file.Path;
import java.util.List;

/**
 * What a NIAH run evaluates.
 *
 * @param policies eviction policy names
 * @param budgets each a fraction of the prompt length if below 1, else tokens per (layer, KV head);
 *     every policy but {@code full} runs at each
 * @param quants KV codecs ({@code none} stores f16)
 * @param modes query-agnostic and/or query-aware
 * @param lengths prompt lengths in tokens
 * @param depths needle depths in [0, 1]
 * @param haystack haystack file, or null for the built-in text
 * @param key fixed KEY, or null for a random held-out KEY per cell
 * @param value fixed VALUE, or null for a random VALUE per cell
 * @param customNeedle a needle of another form, or null for the standard one
 * @param samples prompts per (length, depth) cell
 * @param seed seed of every random choice
 * @param threads cells evaluated in parallel
 * @param maxNewTokens generation limit per answer
 * @param out report folder
 */
public record NiahOptions(
        List<String> policies,
        List<Double> budgets,
        List<String> quants,
        List<NiahMode> modes,
        List<Integer> lengths,
        List<Double> depths,
        Path haystack,
        String key,
        String value,
        Needle customNeedle,
        int samples,
        long seed,
        int threads,
        int maxNewTokens,
        Path out) {

    public NiahOptions {
        policies = List.copyOf(policies);
        budgets = List.copyOf(budgets);
        if (budgets.isEmpty()) {
            throw new IllegalArgumentException("budgets must not be empty");
        }
        for (double budget : budgets) {
            Budget.of(budget); // throws for anything that is not a fraction in (0, 1) or whole tokens
        }
        quants = List.copyOf(quants);
        modes = List.copyOf(modes);
        lengths = List.copyOf(lengths);
        depths = List.copyOf(depths);
        if (policies.isEmpty() || quants.isEmpty() || modes.isEmpty() || lengths.isEmpty() || depths.isEmpty()) {
            throw new IllegalArgumentException("policies, quants, modes, lengths and depths must not be empty");
        }
        for (double d : depths) {
            if (!(d >= 0 && d <= 1)) {
                throw new IllegalArgumentException("depth " + d + " out of range [0, 1]");
            }
        }
        for (int l : lengths) {
            if (l < 64 || l > 1 << 20) {
                throw new IllegalArgumentException("length " + l + " out of range [64, 1048576]");
            }
        }
        if (samples < 1 || threads < 1 || maxNewTokens < 1) {
            throw new IllegalArgumentException("samples, threads and maxNewTokens must be >= 1");
        }
    }

    /** Budget {@code budget} in tokens for a prompt of {@code length} tokens ({@link Budget#resolve}). */
    public static int budgetTokens(double budget, int length) {
        return Budget.of(budget).resolve(length).tokens();
    }

    /** Evenly spaced depths from 0 to 1 inclusive. */
    public static List<Double> evenDepths(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("--depths count must be >= 1, was " + n);
        }
        if (n == 1) {
            return List.of(0.5);
        }
        Double[] d = new Double[n];
        for (int i = 0; i < n; i++) {
            d[i] = i / (double) (n - 1);
        }
        return List.of(d);
    }
}
