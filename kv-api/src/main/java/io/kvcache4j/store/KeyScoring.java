package io.kvcache4j.store;

import io.kvcache4j.attention.GroupAttention;

/**
 * A {@link HeadStore} that scores its keys on its own encoding without running attention: what a
 * retrieval selector needs from a store whose keys are codes (scoring each key by reading it back
 * would dequantize the cache). The logits are those {@link HeadStore#attend} computes for the same
 * queries, to the bit.
 */
public interface KeyScoring extends HeadStore {

    /**
     * Writes the logits of slots {@code [0, slots)} for every query head of {@code state}'s pass
     * ({@link GroupAttention#queries()}, as scaled when the pass began): {@code out[h·outStride + j]}
     * for {@code h < state.group()} and {@code j < slots}, the values {@link HeadStore#attend} pushes
     * for those slots. The pass's running softmax state is not touched. Same threading as {@code
     * attend}.
     *
     * @throws IllegalArgumentException if {@code slots} exceeds the store's count, {@code outStride <
     *     slots}, {@code out} is too short or the state's head dimension differs from the store's
     * @throws IllegalStateException if the store is closed
     */
    void scoreKeys(GroupAttention state, int slots, float[] out, int outStride);

    /**
     * Attends {@code selection} into {@code state}'s running pass, like {@link HeadStore#attend}, with
     * the logits already known: slot {@code s} of head {@code h} has logit {@code logits[offset +
     * h·stride + s]}, which must be what {@link #scoreKeys} gave for the same (scaled) queries; only
     * the values are read. A selector that scored every key to choose some (HGCA's salient tokens)
     * then does not score the chosen ones again. With the logits {@code scoreKeys} gives for a state
     * of the same group size the result is bit for bit that of {@code attend}; logits scored for a
     * whole group and attended head by head may differ from a head's own scores in the last bit where
     * the kernel scores one head through another path than a group (the exact f16 pages do; the
     * codecs do not). Default: {@code attend}, which scores the selection again.
     *
     * @throws IllegalArgumentException as {@code attend}, or if {@code logits} is too short for the
     *     selection's last slot
     */
    default void attendScored(GroupAttention state, SlotSelection selection, float[] logits, int offset, int stride) {
        attend(state, selection);
    }

    /**
     * The argument checks of {@link #scoreKeys} for a store of {@code count} slots and {@code headDim}
     * elements per row.
     */
    static void check(GroupAttention state, int slots, int count, int headDim, float[] out, int outStride) {
        if (slots < 0 || slots > count) {
            throw new IllegalArgumentException("slots must be in [0, " + count + "], was " + slots);
        }
        int g = state.group();
        if (outStride < slots || (long) (g - 1) * outStride + slots > out.length) {
            throw new IllegalArgumentException("out of " + out.length + " floats with stride " + outStride
                    + " cannot hold " + g + " heads of " + slots + " logits");
        }
        if (state.headDim() != headDim) {
            throw new IllegalArgumentException(
                    "attention state has headDim " + state.headDim() + ", the store " + headDim);
        }
    }

    /** Throws unless {@code logits} reaches the selection's last slot for every head. */
    static void checkScoredLogits(SlotSelection selection, int group, float[] logits, int offset, int stride) {
        if (selection.limit() > 0
                && (offset < 0 || (long) offset + (long) (group - 1) * stride + selection.limit() > logits.length)) {
            throw new IllegalArgumentException("logits of " + logits.length + " floats from offset " + offset
                    + " with stride " + stride + " do not reach slot " + (selection.limit() - 1) + " of " + group
                    + " heads");
        }
    }
}
