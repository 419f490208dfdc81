package io.kvcache4j.eval.gguf;

import java.util.Objects;

/**
 * One typed GGUF metadata value. The Java representation of {@link #value()} depends on the type:
 * integer types are a {@link Long} (a {@code UINT64} as its raw bits), {@code FLOAT32} a {@link
 * Float}, {@code FLOAT64} a {@link Double}, {@code BOOL} a {@link Boolean}, {@code STRING} a {@link
 * String}, {@code ARRAY} a {@link GgufArray}.
 *
 * @param type the GGUF value type
 * @param value the value, as described above
 */
public record GgufValue(GgufValueType type, Object value) {

    public GgufValue {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(value, "value");
        boolean ok = switch (type) {
            case FLOAT32 -> value instanceof Float;
            case FLOAT64 -> value instanceof Double;
            case BOOL -> value instanceof Boolean;
            case STRING -> value instanceof String;
            case ARRAY -> value instanceof GgufArray;
            default -> value instanceof Long l && checkIntegerRange(type, l, "value") == l;
        };
        if (!ok) {
            throw new IllegalArgumentException(type + " value must be held as " + javaClassFor(type) + ", was "
                    + value.getClass().getSimpleName());
        }
    }

    public static GgufValue ofUInt8(int v) {
        return new GgufValue(GgufValueType.UINT8, (long) v);
    }

    public static GgufValue ofInt8(int v) {
        return new GgufValue(GgufValueType.INT8, (long) v);
    }

    public static GgufValue ofUInt16(int v) {
        return new GgufValue(GgufValueType.UINT16, (long) v);
    }

    public static GgufValue ofInt16(int v) {
        return new GgufValue(GgufValueType.INT16, (long) v);
    }

    public static GgufValue ofUInt32(long v) {
        return new GgufValue(GgufValueType.UINT32, v);
    }

    public static GgufValue ofInt32(int v) {
        return new GgufValue(GgufValueType.INT32, (long) v);
    }

    /** A {@code UINT64}; a negative {@code v} stands for its unsigned bit pattern. */
    public static GgufValue ofUInt64(long v) {
        return new GgufValue(GgufValueType.UINT64, v);
    }

    public static GgufValue ofInt64(long v) {
        return new GgufValue(GgufValueType.INT64, v);
    }

    public static GgufValue ofFloat32(float v) {
        return new GgufValue(GgufValueType.FLOAT32, v);
    }

    public static GgufValue ofFloat64(double v) {
        return new GgufValue(GgufValueType.FLOAT64, v);
    }

    public static GgufValue ofBool(boolean v) {
        return new GgufValue(GgufValueType.BOOL, v);
    }

    public static GgufValue ofString(String v) {
        return new GgufValue(GgufValueType.STRING, v);
    }

    public static GgufValue ofArray(GgufArray v) {
        return new GgufValue(GgufValueType.ARRAY, v);
    }

    /** The value for display: strings quoted, arrays abbreviated to their first few elements. */
    public String display(int maxArrayElements) {
        return switch (type) {
            case STRING -> quote((String) value);
            case ARRAY -> ((GgufArray) value).summary(maxArrayElements);
            case UINT64 -> Long.toUnsignedString((Long) value);
            default -> value.toString();
        };
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 2).append('"');
        s.codePoints().forEach(cp -> {
            switch (cp) {
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                default -> {
                    if (cp < 0x20 || cp == 0x7f) {
                        sb.append(String.format("\\x%02x", cp));
                    } else {
                        sb.appendCodePoint(cp);
                    }
                }
            }
        });
        return sb.append('"').toString();
    }

    /** Returns {@code v} when it lies in the range of integer {@code type}, else throws. */
    static long checkIntegerRange(GgufValueType type, long v, String what) {
        long min;
        long max;
        switch (type) {
            case UINT8 -> {
                min = 0;
                max = 0xFF;
            }
            case INT8 -> {
                min = Byte.MIN_VALUE;
                max = Byte.MAX_VALUE;
            }
            case UINT16 -> {
                min = 0;
                max = 0xFFFF;
            }
            case INT16 -> {
                min = Short.MIN_VALUE;
                max = Short.MAX_VALUE;
            }
            case UINT32 -> {
                min = 0;
                max = 0xFFFF_FFFFL;
            }
            case INT32 -> {
                min = Integer.MIN_VALUE;
                max = Integer.MAX_VALUE;
            }
            case UINT64, INT64 -> {
                return v;
            }
            default -> throw new IllegalArgumentException(type + " is not an integer type");
        }
        if (v < min || v > max) {
            throw new IllegalArgumentException(
                    what + " " + v + " out of range for " + type + " [" + min + ", " + max + "]");
        }
        return v;
    }

    private static String javaClassFor(GgufValueType type) {
        return switch (type) {
            case FLOAT32 -> "Float";
            case FLOAT64 -> "Double";
            case BOOL -> "Boolean";
            case STRING -> "String";
            case ARRAY -> "GgufArray";
            default -> "Long";
        };
    }
}
