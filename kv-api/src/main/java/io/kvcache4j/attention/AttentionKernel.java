package io.kvcache4j.attention;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ScoreAggregation;
import java.lang.foreign.MemorySegment;

/**
 * Single-pass grouped attention over stored key/value rows: the paged scan, its online-softmax
 * step, and per-key softmax mass. Conversion and dot products are separate supports of the same
 * implementation family ({@code io.kvcache4j.internal.vectorization.VectorizationProvider}).
 *
 * <p>Two implementations exist with identical contracts: a Vector API one ({@code panama}) and a
 * portable scalar twin ({@code scalar}). {@link AttentionKernels#get()} picks one per process. All
 * methods are stateless and thread-safe; state lives in the caller's {@link GroupAttention}.
 *
 * <p>Storage is little-endian. Keys are stored dimension-major in blocks ("transposed"): element
 * {@code i} of the key of token {@code j} of a page is at {@code keyOffset + (i·keyStride + j)·bytes},
 * so that one vector load fetches dimension {@code i} of {@link GroupAttention#BLOCK} consecutive
 * keys and scores need no horizontal reductions. Values are stored in blocks of {@link
 * GroupAttention#BLOCK} rows cut into column chunks ({@link ValueChunks}): each chunk of {@link
 * ValueChunks#WIDTH} elements holds its slice of the block's rows, row after row, so that the value
 * step reads a block's bytes in address order.
 */
public interface AttentionKernel {

    /** {@code "panama"} or {@code "scalar"}. */
    String name();

    /**
     * Feeds rows {@code [row, row + rows)} of a page to the running attention in {@code state}: keys
     * dimension-major at {@code keyOffset} with {@code keyStride} tokens per dimension (a multiple of
     * {@link GroupAttention#BLOCK}; lanes past the rows may hold anything and are ignored), values in
     * the {@link ValueChunks} layout at {@code valueOffset}. {@code firstSlot} is the
     * slot index of the first of these rows, for the logit record.
     *
     * @throws IllegalArgumentException if {@code row < 0}, {@code rows < 0} or {@code row + rows >
     *     keyStride}
     */
    void scan(
            GroupAttention state,
            MemorySegment page,
            long keyOffset,
            int keyStride,
            long valueOffset,
            KvDType type,
            int row,
            int rows,
            int firstSlot);

    /**
     * Logits alone, for selectors that rank keys before attending some of them: for each query head
     * {@code h} of the state's group, {@code out[h·outStride + outOffset + j] = q_h·k_j} with the
     * state's scaled queries ({@link GroupAttention#begin}) over the first {@code rows} tokens of a
     * page, keys laid out as {@link #scan} reads them. Each dot product is summed as {@link #scan}
     * sums it, so a selector ranks keys by the logits attention would see. Reads no values; uses the
     * state's scratch but leaves its running softmax untouched.
     */
    void scores(
            GroupAttention state,
            MemorySegment page,
            long keyOffset,
            int keyStride,
            KvDType type,
            int rows,
            float[] out,
            int outOffset,
            int outStride);

    /**
     * One online-softmax step over the block logits in {@code state} ({@code nb} valid keys; lanes
     * past {@code nb} hold {@code −∞}): raises the running maximum (rescaling sum and accumulator),
     * replaces the logits by their weights {@code exp(s − m)} and, if the pass records, keeps the
     * weights at {@code slot} and the maxima they are relative to.
     */
    void onlineSoftmax(GroupAttention state, int nb, int slot);

    /**
     * The value half of one {@link #scan} block: adds the weights the state's last online-softmax
     * step left ({@link #onlineSoftmax}, {@link GroupAttention#pushLogits}) times the {@code nb} value
     * rows {@code [row, row + nb)} of the {@link ValueChunks} region at {@code page + valueOffset} to
     * the accumulator, with the arithmetic {@code scan} uses after its softmax step. So pushing a
     * block's logits and then this gives the bits of {@code scan} over the same rows when the logits
     * are the ones {@code scan} computes.
     *
     * @throws IllegalArgumentException if {@code nb} is not in {@code [1, BLOCK]} or {@code row < 0}
     */
    void accumulateValues(GroupAttention state, MemorySegment page, long valueOffset, int row, KvDType type, int nb);

    /**
     * After {@link GroupAttention#finish}, converts the recorded weights of slots {@code [0, slots)}
     * into softmax mass per slot, reduced over the group by {@code aggregation}, into {@code
     * massOut[0..slots)}: a weight {@code w = exp(s − m_b)} of a block whose maximum was {@code m_b}
     * becomes {@code w·exp(m_b − lse)}, one exponential per block and head. Slots the pass did not
     * record get 0.
     */
    void mass(GroupAttention state, int slots, ScoreAggregation aggregation, float[] massOut);

    /**
     * Tokens per prefill tile for rows of {@code type} and {@code headDim} and a GQA group of {@code
     * group}: a {@link #scan} over a {@link GroupAttention} of {@code tiles · group} rows with unit
     * {@code group} gives every token's rows the bits of its own pass over the same keys while
     * loading and widening each key and value once for all of them. 1 where this kernel has no such
     * path (the caller then runs one pass per token).
     */
    default int prefillTileTokens(KvDType type, int headDim, int group) {
        return 1;
    }
}
