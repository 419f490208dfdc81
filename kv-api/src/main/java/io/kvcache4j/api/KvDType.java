package io.kvcache4j.api;

/**
 * Element type in which a cache stores keys and values.
 *
 * <p>Conversions from {@code float} round to nearest, ties to even, exactly as {@link
 * Float#floatToFloat16(float)} does for {@link #F16}. Values that the type cannot represent (NaN,
 * infinities, or finite values beyond the type's largest finite value) are rejected by the cache
 * rather than silently saturated.
 */
public enum KvDType {
    /** IEEE 754 binary32. */
    F32(4, Float.MAX_VALUE),
    /** IEEE 754 binary16 (half precision). */
    F16(2, 65504.0f),
    /** bfloat16: the upper 16 bits of binary32, rounded to nearest even. */
    BF16(2, Float.intBitsToFloat(0x7F7F0000));

    private final int bytes;
    private final float maxFinite;

    KvDType(int bytes, float maxFinite) {
        this.bytes = bytes;
        this.maxFinite = maxFinite;
    }

    /** Bytes per stored element. */
    public int bytes() {
        return bytes;
    }

    /** Largest finite magnitude this type stores after rounding. */
    public float maxFinite() {
        return maxFinite;
    }

    /** Parses {@code f32}, {@code f16} or {@code bf16} (case-insensitive). */
    public static KvDType parse(String name) {
        for (KvDType t : values()) {
            if (t.name().equalsIgnoreCase(name)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown KV dtype '" + name + "'; allowed: f32, f16, bf16");
    }

    /** Returns whether {@code x} is finite and, after rounding, representable by this type. */
    public boolean representable(float x) {
        if (!Float.isFinite(x)) {
            return false;
        }
        return switch (this) {
            case F32 -> true;
            case F16 -> Float.isFinite(Float.float16ToFloat(Float.floatToFloat16(x)));
            case BF16 -> Float.isFinite(bf16BitsToFloat(floatToBf16Bits(x)));
        };
    }

    /** Returns {@code x} rounded to this type and widened back to {@code float}. */
    public float round(float x) {
        return switch (this) {
            case F32 -> x;
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(x));
            case BF16 -> bf16BitsToFloat(floatToBf16Bits(x));
        };
    }

    /** Rounds a finite float to bfloat16 bits (round to nearest, ties to even). */
    public static short floatToBf16Bits(float x) {
        int bits = Float.floatToRawIntBits(x);
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    /** Widens bfloat16 bits to float (exact). */
    public static float bf16BitsToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }
}
