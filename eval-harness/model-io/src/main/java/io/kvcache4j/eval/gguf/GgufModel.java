package io.kvcache4j.eval.gguf;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A GGUF (v2 or v3) model file opened for reading: its metadata, its tensor table, and its tensors
 * memory-mapped, not copied.
 *
 * <p><b>Ownership.</b> {@link #open} maps the whole file into a {@link MemorySegment} owned by a
 * shared {@link Arena} that this object owns; {@link #close()} unmaps it. {@link WeightMatrix} views
 * and {@link #tensorData} slices read that mapping and fail with {@link IllegalStateException} once
 * the model is closed. Metadata values ({@link GgufValue}, {@link GgufArray}) and the float arrays
 * returned by {@link #floats} are copies and stay valid after closing.
 *
 * <p><b>Thread-safety.</b> All methods may be called from any thread while the model is open;
 * nothing is mutable except the open/closed state. Do not close while other threads still compute
 * with its weights.
 *
 * <p><b>Errors.</b> A file that is truncated or corrupt, that names an unknown type or whose tensor
 * offsets and shapes are inconsistent fails in {@link #open} with a {@link GgufFormatException}
 * naming the key or tensor and the offending value. A metadata getter fails with a {@link
 * GgufFormatException} naming the key when it is missing or holds another type.
 */
public final class GgufModel implements AutoCloseable {
    private final Path path;
    private final Arena arena;
    private final MemorySegment mapping;
    private final GgufParser.Result header;
    private final Map<String, GgufTensorInfo> tensorsByName;

    private GgufModel(Path path, Arena arena, MemorySegment mapping, GgufParser.Result header) {
        this.path = path;
        this.arena = arena;
        this.mapping = mapping;
        this.header = header;
        Map<String, GgufTensorInfo> m = new LinkedHashMap<>();
        for (GgufTensorInfo t : header.tensors()) {
            m.put(t.name(), t);
        }
        this.tensorsByName = m;
    }

    /**
     * Maps and parses the file.
     *
     * @throws IOException if the file cannot be read or mapped
     * @throws GgufFormatException if it is not a well-formed GGUF v2/v3 file
     */
    public static GgufModel open(Path path) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < GgufParser.HEADER_BYTES) {
                throw new GgufFormatException(path + ": file is " + size + " bytes, shorter than the "
                        + GgufParser.HEADER_BYTES + "-byte GGUF header");
            }
            MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            GgufParser.Result header = GgufParser.parse(seg, path.toString());
            return new GgufModel(path, arena, seg, header);
        } catch (IOException | RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** The file this model was read from. */
    public Path path() {
        return path;
    }

    /** GGUF format version: 2 or 3. */
    public int version() {
        return header.version();
    }

    /** Size of the file in bytes. */
    public long fileSize() {
        return mapping.byteSize();
    }

    /** Alignment of tensor data in bytes ({@code general.alignment}, default 32). */
    public int alignment() {
        return header.alignment();
    }

    /** File offset of the data section, where tensor data offsets are counted from. */
    public long dataSectionOffset() {
        return header.dataOffset();
    }

    /** All metadata in file order; unmodifiable. */
    public Map<String, GgufValue> metadata() {
        return header.metadata();
    }

    /** Whether the metadata has {@code key}. */
    public boolean hasKey(String key) {
        return header.metadata().containsKey(key);
    }

    /** The value of {@code key}, if present. */
    public Optional<GgufValue> find(String key) {
        return Optional.ofNullable(header.metadata().get(key));
    }

    /** The value of {@code key}; fails naming the key when it is missing. */
    public GgufValue get(String key) {
        GgufValue v = header.metadata().get(key);
        if (v == null) {
            throw new GgufFormatException(path + ": missing metadata key '" + key + "'");
        }
        return v;
    }

    /** A {@code STRING} value. */
    public String getString(String key) {
        return (String) expect(key, get(key), GgufValueType.STRING);
    }

    /** A {@code STRING} value, or {@code defaultValue} when the key is missing. */
    public String getString(String key, String defaultValue) {
        return hasKey(key) ? getString(key) : defaultValue;
    }

    /** A value of any integer type that fits an int. */
    public int getInt(String key) {
        long v = getLong(key);
        if (v != (int) v) {
            throw new GgufFormatException(path + ": metadata key '" + key + "' = " + v + " does not fit an int ["
                    + Integer.MIN_VALUE + ", " + Integer.MAX_VALUE + "]");
        }
        return (int) v;
    }

    /** A value of any integer type that fits an int, or {@code defaultValue} when the key is missing. */
    public int getInt(String key, int defaultValue) {
        return hasKey(key) ? getInt(key) : defaultValue;
    }

    /** A value of any integer type that fits a long ({@code UINT64} values up to 2^63 − 1). */
    public long getLong(String key) {
        GgufValue v = get(key);
        if (!v.type().isInteger()) {
            throw wrongType(key, v, "an integer type");
        }
        long l = (Long) v.value();
        if (v.type() == GgufValueType.UINT64 && l < 0) {
            throw new GgufFormatException(path + ": metadata key '" + key + "' = " + Long.toUnsignedString(l)
                    + " does not fit a long [" + Long.MIN_VALUE + ", " + Long.MAX_VALUE + "]");
        }
        return l;
    }

    /** A {@code FLOAT32} value, or a {@code FLOAT64} one rounded to float. */
    public float getFloat(String key) {
        GgufValue v = get(key);
        return switch (v.type()) {
            case FLOAT32 -> (Float) v.value();
            case FLOAT64 -> (float) (double) (Double) v.value();
            default -> throw wrongType(key, v, "FLOAT32 or FLOAT64");
        };
    }

    /** Like {@link #getFloat(String)}, or {@code defaultValue} when the key is missing. */
    public float getFloat(String key, float defaultValue) {
        return hasKey(key) ? getFloat(key) : defaultValue;
    }

    /** A {@code BOOL} value. */
    public boolean getBoolean(String key) {
        return (Boolean) expect(key, get(key), GgufValueType.BOOL);
    }

    /** A {@code BOOL} value, or {@code defaultValue} when the key is missing. */
    public boolean getBoolean(String key, boolean defaultValue) {
        return hasKey(key) ? getBoolean(key) : defaultValue;
    }

    /** An {@code ARRAY} value. */
    public GgufArray getArray(String key) {
        return (GgufArray) expect(key, get(key), GgufValueType.ARRAY);
    }

    /** The tensor table in file order; unmodifiable. */
    public List<GgufTensorInfo> tensors() {
        return header.tensors();
    }

    /** Whether a tensor of this name exists. */
    public boolean hasTensor(String name) {
        return tensorsByName.containsKey(name);
    }

    /** The tensor's info; fails naming the tensor when there is none. */
    public GgufTensorInfo tensor(String name) {
        GgufTensorInfo t = tensorsByName.get(name);
        if (t == null) {
            throw new GgufFormatException(
                    path + ": no tensor named '" + name + "' (the file has " + tensorsByName.size() + " tensors)");
        }
        return t;
    }

    /** A read-only view of the tensor's bytes in the mapping (valid until {@link #close()}). */
    public MemorySegment tensorData(String name) {
        GgufTensorInfo t = tensor(name);
        return mapping.asSlice(t.fileOffset(), t.byteSize()).asReadOnly();
    }

    /**
     * The tensor as a matrix of {@code rows = ne[1]·ne[2]·ne[3]} rows of {@code cols = ne[0]}
     * elements, computing directly on the mapped (possibly quantized) bytes.
     *
     * @throws UnsupportedOperationException if the tensor's type has no kernel
     * @throws GgufFormatException if rows or cols exceed {@link Integer#MAX_VALUE}
     */
    public WeightMatrix weights(String name) {
        GgufTensorInfo t = tensor(name);
        checkKernel(t);
        long cols = t.rowLength();
        long rows = t.rowCount();
        if (cols > Integer.MAX_VALUE || rows > Integer.MAX_VALUE) {
            throw new GgufFormatException(path + ": tensor '" + name + "' has " + rows + " rows of " + cols
                    + " elements; each must be at most " + Integer.MAX_VALUE);
        }
        return new MappedWeightMatrix(
                name,
                t.type(),
                (int) rows,
                (int) cols,
                mapping,
                t.fileOffset(),
                t.type().bytesFor(cols));
    }

    /**
     * The whole tensor converted to floats (a copy), e.g. a norm weight vector or a bias.
     *
     * @throws UnsupportedOperationException if the tensor's type has no kernel
     * @throws GgufFormatException if it has more than {@code Integer.MAX_VALUE - 8} elements
     */
    public float[] floats(String name) {
        GgufTensorInfo t = tensor(name);
        checkKernel(t);
        long n = t.elementCount();
        if (n > Integer.MAX_VALUE - 8) {
            throw new GgufFormatException(
                    path + ": tensor '" + name + "' has " + n + " elements, too many for a float[]");
        }
        float[] out = new float[(int) n];
        GgmlQuants.dequantize(t.type(), mapping, t.fileOffset(), out, 0, (int) n);
        return out;
    }

    /** Unmaps the file. Idempotent. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    /** Whether {@link #close()} has not been called yet. */
    public boolean isOpen() {
        return arena.scope().isAlive();
    }

    private void checkKernel(GgufTensorInfo t) {
        if (!t.type().hasKernel()) {
            throw new UnsupportedOperationException(path + ": tensor '" + t.name() + "' has type " + t.type()
                    + "; supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K");
        }
    }

    private Object expect(String key, GgufValue v, GgufValueType type) {
        if (v.type() != type) {
            throw wrongType(key, v, type.name());
        }
        return v.value();
    }

    private GgufFormatException wrongType(String key, GgufValue v, String wanted) {
        return new GgufFormatException(
                path + ": metadata key '" + key + "' is " + v.type() + " (" + v.display(4) + "), expected " + wanted);
    }

    @Override
    public String toString() {
        return "GgufModel[" + path + ", v" + version() + ", " + metadata().size() + " keys, "
                + tensors().size() + " tensors]";
    }
}
