package io.kvcache4j.attention;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ScoreAggregation;
import java.lang.foreign.MemorySegment;

/**
 * The numeric kernels of the cache: conversion between {@code float} and the storage types, dot
 * products, and single-pass grouped attention over stored key/value rows.
 *
 * <p>Two implementations exist with identical contracts: a Vector API one ({@code panama}) and a
 * portable scalar twin ({@code scalar}). {@link AttentionKernels#get()} picks one per process. All
 * methods are stateless and thread-safe; state lives in the caller's {@link GroupAttention}.
 *
 * <p>Storage rows are little-endian, {@code headDim} contiguous elements each, rows contiguous.
 */
public interface AttentionKernel {

    /** {@code "panama"} or {@code "scalar"}. */
    String name();

    /** {@code Σ a[aOff+i]·b[bOff+i]} for {@code i < n}. */
    float dot(float[] a, int aOff, float[] b, int bOff, int n);

    /** Rounds {@code n} floats to {@code type} and stores them at {@code dst + dstOffset}. */
    void encode(float[] src, int srcOff, MemorySegment dst, long dstOffset, KvDType type, int n);

    /** Widens {@code n} stored elements of {@code type} into floats. */
    void decode(MemorySegment src, long srcOffset, KvDType type, float[] dst, int dstOff, int n);

    /**
     * Feeds {@code rows} consecutive key rows and value rows to the running attention in {@code
     * state}. {@code firstSlot} is the slot index of the first row, used for the logit record.
     */
    void scan(
            GroupAttention state,
            MemorySegment keys,
            long keyOffset,
            MemorySegment values,
            long valueOffset,
            KvDType type,
            int rows,
            int firstSlot);

    /**
     * After {@link GroupAttention#finish}, converts the recorded logits of slots {@code [0, slots)}
     * into softmax mass per slot, reduced over the group by {@code aggregation}, into {@code
     * massOut[0..slots)}.
     */
    void mass(GroupAttention state, int slots, ScoreAggregation aggregation, float[] massOut);
}
