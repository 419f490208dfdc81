package io.kvcache4j.eval.niah;

/**
 * One evaluated cell.
 *
 * @param policy eviction policy
 * @param budget the budget as given (fraction or tokens)
 * @param budgetTokens the budget in tokens for this prompt
 * @param quant KV codec
 * @param mode query-agnostic or query-aware
 * @param length prompt length in tokens
 * @param depth requested needle depth
 * @param needleDepth realised needle depth
 * @param sample sample index within the cell
 * @param key the KEY asked for
 * @param expected the expected answer (VALUE)
 * @param correct whether the output contains the expected answer
 * @param output the generated text
 * @param kvBytesRetained bytes the cache held when the answer was generated
 * @param kvBytesFull bytes a full f16 cache holds for the same tokens
 * @param millis wall time of the cell
 */
public record NiahResult(
        String policy,
        double budget,
        int budgetTokens,
        String quant,
        String mode,
        int length,
        double depth,
        double needleDepth,
        int sample,
        String key,
        String expected,
        boolean correct,
        String output,
        long kvBytesRetained,
        long kvBytesFull,
        long millis) {

    /** Label of the configuration this cell belongs to. */
    public String configuration() {
        return configuration(policy, budget, quant, mode);
    }

    static String configuration(String policy, double budget, String quant, String mode) {
        String b = policy.equals("full") && !NiahRunner.sizedByBudget(quant)
                ? ""
                : "-b" + (budget < 1 ? String.valueOf(budget) : String.valueOf((long) budget));
        return policy + b + "-" + quant + "-" + mode;
    }
}
