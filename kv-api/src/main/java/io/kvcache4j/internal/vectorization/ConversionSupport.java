package io.kvcache4j.internal.vectorization;

import io.kvcache4j.api.KvDType;
import java.lang.foreign.MemorySegment;

/**
 * Conversion between {@code float} and the storage types, little-endian: f32 as is, f16 and bf16
 * rounded to nearest, ties to even ({@link KvDType#round}), widened exactly. Both implementations
 * (Vector API and scalar, chosen by {@link VectorizationProvider}) give identical bits. Stateless and
 * thread-safe.
 */
public interface ConversionSupport {

    /** Rounds {@code n} floats to {@code type} and stores them at {@code dst + dstOffset}. */
    void encode(float[] src, int srcOff, MemorySegment dst, long dstOffset, KvDType type, int n);

    /** Widens {@code n} stored elements of {@code type} into floats. */
    void decode(MemorySegment src, long srcOffset, KvDType type, float[] dst, int dstOff, int n);

    /** Rounds {@code n} floats to {@code type} and stores element {@code i} at {@code dstOffset + i·strideBytes}. */
    void encodeStrided(
            float[] src, int srcOff, MemorySegment dst, long dstOffset, long strideBytes, KvDType type, int n);

    /** Widens {@code n} elements stored at {@code srcOffset + i·strideBytes} into floats. */
    void decodeStrided(
            MemorySegment src, long srcOffset, long strideBytes, KvDType type, float[] dst, int dstOff, int n);
}
