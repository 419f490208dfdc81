package io.kvcache4j.eval.gguf;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * An immutable GGUF metadata array: elements of one {@link GgufValueType}, possibly arrays
 * themselves. The reader copies the elements out of the file, so an array stays valid after its
 * {@link GgufModel} is closed. Integer elements are held as {@code long} (a {@code UINT64} element
 * as its raw 64 bits), strings as their raw UTF-8 bytes.
 *
 * <p>Thread-safe: nothing changes after construction.
 */
public final class GgufArray {
    private final GgufValueType elementType;
    private final int size;
    // long[] for integers, float[], double[], boolean[], byte[][] for strings, GgufArray[] for arrays
    private final Object data;

    private GgufArray(GgufValueType elementType, int size, Object data) {
        this.elementType = elementType;
        this.size = size;
        this.data = data;
    }

    /**
     * Integer elements of {@code type}; each value is checked against the type's range (for {@code
     * UINT64} any long is taken as its unsigned bit pattern).
     */
    public static GgufArray ofIntegers(GgufValueType type, long... values) {
        if (!type.isInteger()) {
            throw new IllegalArgumentException("ofIntegers needs an integer type, not " + type);
        }
        long[] copy = values.clone();
        for (int i = 0; i < copy.length; i++) {
            GgufValue.checkIntegerRange(type, copy[i], "element " + i);
        }
        return new GgufArray(type, copy.length, copy);
    }

    /** {@code INT32} elements. */
    public static GgufArray ofInt32(int... values) {
        long[] v = new long[values.length];
        for (int i = 0; i < v.length; i++) {
            v[i] = values[i];
        }
        return new GgufArray(GgufValueType.INT32, v.length, v);
    }

    /** {@code FLOAT32} elements. */
    public static GgufArray ofFloat32(float... values) {
        return new GgufArray(GgufValueType.FLOAT32, values.length, values.clone());
    }

    /** {@code FLOAT64} elements. */
    public static GgufArray ofFloat64(double... values) {
        return new GgufArray(GgufValueType.FLOAT64, values.length, values.clone());
    }

    /** {@code BOOL} elements. */
    public static GgufArray ofBools(boolean... values) {
        return new GgufArray(GgufValueType.BOOL, values.length, values.clone());
    }

    /** {@code STRING} elements, stored as UTF-8. */
    public static GgufArray ofStrings(List<String> values) {
        byte[][] b = new byte[values.size()][];
        for (int i = 0; i < b.length; i++) {
            b[i] = Objects.requireNonNull(values.get(i), "element " + i).getBytes(StandardCharsets.UTF_8);
        }
        return new GgufArray(GgufValueType.STRING, b.length, b);
    }

    /** {@code STRING} elements given as raw bytes (which need not be valid UTF-8). */
    public static GgufArray ofStringBytes(byte[]... values) {
        byte[][] b = new byte[values.length][];
        for (int i = 0; i < b.length; i++) {
            b[i] = Objects.requireNonNull(values[i], "element " + i).clone();
        }
        return new GgufArray(GgufValueType.STRING, b.length, b);
    }

    /** {@code ARRAY} elements (nested arrays, each with its own element type). */
    public static GgufArray ofArrays(GgufArray... values) {
        GgufArray[] copy = values.clone();
        for (int i = 0; i < copy.length; i++) {
            Objects.requireNonNull(copy[i], "element " + i);
        }
        return new GgufArray(GgufValueType.ARRAY, copy.length, copy);
    }

    /** Wraps arrays the reader filled; no copy. */
    static GgufArray wrap(GgufValueType type, int size, Object data) {
        return new GgufArray(type, size, data);
    }

    public GgufValueType elementType() {
        return elementType;
    }

    public int size() {
        return size;
    }

    /** Element {@code i} of an integer array ({@code UINT64} as its raw bits). */
    public long getLong(int i) {
        return ((long[]) typed(i, "integer", elementType.isInteger()))[i];
    }

    /** Element {@code i} of a numeric array, widened to double. */
    public double getDouble(int i) {
        Objects.checkIndex(i, size);
        return switch (data) {
            case float[] f -> f[i];
            case double[] d -> d[i];
            case long[] l when elementType == GgufValueType.UINT64 && l[i] < 0 -> l[i] + 0x1p64;
            case long[] l -> l[i];
            default -> throw wrongType("numeric");
        };
    }

    /** Element {@code i} of a {@code BOOL} array. */
    public boolean getBoolean(int i) {
        return ((boolean[]) typed(i, "BOOL", elementType == GgufValueType.BOOL))[i];
    }

    /** Element {@code i} of a {@code STRING} array, decoded as UTF-8 (malformed bytes become U+FFFD). */
    public String getString(int i) {
        return new String(getStringBytesNoCopy(i), StandardCharsets.UTF_8);
    }

    /** The raw bytes of element {@code i} of a {@code STRING} array (a copy). */
    public byte[] getStringBytes(int i) {
        return getStringBytesNoCopy(i).clone();
    }

    byte[] getStringBytesNoCopy(int i) {
        return ((byte[][]) typed(i, "STRING", elementType == GgufValueType.STRING))[i];
    }

    /** Element {@code i} of an {@code ARRAY} array. */
    public GgufArray getArray(int i) {
        return ((GgufArray[]) typed(i, "ARRAY", elementType == GgufValueType.ARRAY))[i];
    }

    /**
     * All elements of an integer array as ints.
     *
     * @throws GgufFormatException if the array is not of an integer type or an element does not fit
     *     an int
     */
    public int[] toIntArray() {
        if (!elementType.isInteger()) {
            throw wrongType("integer");
        }
        long[] l = (long[]) data;
        int[] out = new int[size];
        for (int i = 0; i < size; i++) {
            long v = l[i];
            if (v != (int) v || (elementType == GgufValueType.UINT64 && v < 0)) {
                throw new GgufFormatException("array element " + i + " = "
                        + (elementType == GgufValueType.UINT64 ? Long.toUnsignedString(v) : v)
                        + " does not fit an int [" + Integer.MIN_VALUE + ", " + Integer.MAX_VALUE + "]");
            }
            out[i] = (int) v;
        }
        return out;
    }

    /**
     * All elements as floats: a {@code FLOAT32} array as is, {@code FLOAT64} and integer arrays
     * converted with rounding.
     */
    public float[] toFloatArray() {
        return switch (data) {
            case float[] f -> f.clone();
            case double[] d -> {
                float[] out = new float[size];
                for (int i = 0; i < size; i++) {
                    out[i] = (float) d[i];
                }
                yield out;
            }
            case long[] ignored -> {
                float[] out = new float[size];
                for (int i = 0; i < size; i++) {
                    out[i] = (float) getDouble(i);
                }
                yield out;
            }
            default -> throw wrongType("numeric");
        };
    }

    /** All elements of a {@code STRING} array, decoded as UTF-8. */
    public List<String> toStringList() {
        if (elementType != GgufValueType.STRING) {
            throw wrongType("STRING");
        }
        List<String> out = new ArrayList<>(size);
        for (int i = 0; i < size; i++) {
            out.add(getString(i));
        }
        return Collections.unmodifiableList(out);
    }

    /** The backing data, for the writer: long[], float[], double[], boolean[], byte[][] or GgufArray[]. */
    Object data() {
        return data;
    }

    private Object typed(int i, String wanted, boolean ok) {
        if (!ok) {
            throw wrongType(wanted);
        }
        Objects.checkIndex(i, size);
        return data;
    }

    private GgufFormatException wrongType(String wanted) {
        return new GgufFormatException("array holds " + elementType + " elements, not " + wanted);
    }

    /** Type and length, and the first few elements, e.g. {@code [INT32 × 3] [1, 2, 3]}. */
    public String summary(int maxElements) {
        StringBuilder sb = new StringBuilder();
        sb.append('[').append(elementType).append(" × ").append(size).append("] [");
        int n = Math.min(size, maxElements);
        for (int i = 0; i < n; i++) {
            if (i > 0) {
                sb.append(", ");
            }
            sb.append(
                    switch (elementType) {
                        case STRING -> GgufValue.quote(getString(i));
                        case ARRAY -> getArray(i).summary(Math.max(1, maxElements / 4));
                        case BOOL -> Boolean.toString(getBoolean(i));
                        case FLOAT32, FLOAT64 -> Double.toString(getDouble(i));
                        case UINT64 -> Long.toUnsignedString(getLong(i));
                        default -> Long.toString(getLong(i));
                    });
        }
        if (n < size) {
            sb.append(n > 0 ? ", …" : "…");
        }
        return sb.append(']').toString();
    }

    @Override
    public String toString() {
        return summary(8);
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof GgufArray a) || a.elementType != elementType || a.size != size) {
            return false;
        }
        return switch (data) {
            case long[] l -> Arrays.equals(l, (long[]) a.data);
            case float[] f -> Arrays.equals(f, (float[]) a.data);
            case double[] d -> Arrays.equals(d, (double[]) a.data);
            case boolean[] b -> Arrays.equals(b, (boolean[]) a.data);
            case byte[][] s -> Arrays.deepEquals(s, (byte[][]) a.data);
            case GgufArray[] g -> Arrays.equals(g, (GgufArray[]) a.data);
            default -> false;
        };
    }

    @Override
    public int hashCode() {
        int h = elementType.hashCode() * 31 + size;
        return switch (data) {
            case long[] l -> h * 31 + Arrays.hashCode(l);
            case float[] f -> h * 31 + Arrays.hashCode(f);
            case double[] d -> h * 31 + Arrays.hashCode(d);
            case boolean[] b -> h * 31 + Arrays.hashCode(b);
            case byte[][] s -> h * 31 + Arrays.deepHashCode(s);
            case GgufArray[] g -> h * 31 + Arrays.hashCode(g);
            default -> h;
        };
    }
}
