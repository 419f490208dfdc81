package io.kvcache4j.hybrid;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.store.PagedHeadStore;

/**
 * Configuration of {@link HeadInferFactory}: how many KV heads of every layer stay resident in the
 * fast tier (heads {@code 0 .. residentHeads-1}; the others live in the slow tier and are staged per
 * layer), how many staging buffers the transfer engine has (one buffer holds one offloaded head of
 * one layer; {@code 0}: two layers' worth, {@code 2 × (kvHeads − residentHeads)}, the ping-pong of
 * HeadInfer), and the page size.
 *
 * <p>Values that depend on the model ({@code residentHeads <= kvHeads}, enough staging buffers for
 * one layer) are checked when the first store is created, naming the value and its range.
 *
 * @param residentHeads KV heads per layer kept in the fast tier, {@code >= 0}
 * @param stagingBuffers staging buffers, {@code 0} (automatic) or at least the offloaded heads per
 *     layer
 * @param pageTokens tokens per page, as {@link PagedHeadStore#checkPageTokens}
 */
public record HeadInferConfig(int residentHeads, int stagingBuffers, int pageTokens) {
    public HeadInferConfig {
        if (residentHeads < 0) {
            throw new IllegalArgumentException("residentHeads must be in [0, kvHeads], was " + residentHeads);
        }
        if (stagingBuffers < 0 || stagingBuffers > 4096) {
            throw new IllegalArgumentException(
                    "stagingBuffers must be 0 (automatic) or in [1, 4096], was " + stagingBuffers);
        }
        PagedHeadStore.checkPageTokens(pageTokens);
    }

    /** Every head offloaded, automatic staging, the builder's default page size. */
    public static HeadInferConfig defaults() {
        return new HeadInferConfig(0, 0, KvCacheBuilder.DEFAULT_PAGE_TOKENS);
    }

    /**
     * The fast-tier share of a {@link Budget} as resident heads: a fraction {@code f} keeps {@code
     * round(f × kvHeads)} heads of every layer resident; a token budget {@code T} for a prompt of
     * {@code promptTokens} keeps {@code round(min(1, T / promptTokens) × kvHeads)}. (A head is the unit
     * HeadInfer places, so the share is rounded to whole heads.)
     *
     * @throws IllegalArgumentException if {@code kvHeads} or {@code promptTokens} is below 1
     */
    public static HeadInferConfig forBudget(Budget budget, int kvHeads, int promptTokens, int pageTokens) {
        if (kvHeads < 1) {
            throw new IllegalArgumentException("kvHeads must be in [1, " + Integer.MAX_VALUE + "], was " + kvHeads);
        }
        double share = budget.isFraction()
                ? budget.fraction()
                : Math.min(1.0, (double) budget.resolve(promptTokens).tokens() / promptTokens);
        if (!budget.isFraction() && promptTokens < 1) {
            throw new IllegalArgumentException(
                    "promptTokens must be in [1, " + Integer.MAX_VALUE + "], was " + promptTokens);
        }
        return new HeadInferConfig((int) Math.round(share * kvHeads), 0, pageTokens);
    }

    /** Offloaded heads per layer for a model of {@code kvHeads} KV heads (checks {@link #residentHeads}). */
    public int offloadedHeads(int kvHeads) {
        if (residentHeads > kvHeads) {
            throw new IllegalArgumentException(
                    "residentHeads must be in [0, " + kvHeads + "] (the model's KV heads), was " + residentHeads);
        }
        return kvHeads - residentHeads;
    }

    /** Staging buffers for a model of {@code kvHeads} KV heads (checks that one layer fits). */
    public int stagingBuffers(int kvHeads) {
        int offloaded = offloadedHeads(kvHeads);
        if (stagingBuffers == 0) {
            return Math.max(1, 2 * offloaded);
        }
        if (stagingBuffers < offloaded) {
            throw new IllegalArgumentException("stagingBuffers must be 0 (automatic) or in [" + offloaded
                    + ", 4096] (at least the " + offloaded + " offloaded heads of a layer), was " + stagingBuffers);
        }
        return stagingBuffers;
    }
}
