package io.kvcache4j.eval.gguf;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Builds a GGUF v3 file: metadata of every value type and tensors of any ggml type, given either as
 * floats (encoded as F32, F16, BF16, or quantized to Q8_0 / Q4_0 with ggml's reference rounding) or
 * as raw bytes in the type's block layout. Tensor data is aligned to {@code general.alignment} when
 * that key is set (it must be a {@code UINT32} power of two), else to 32 bytes, and padded with
 * zeros; tensors are written in the order they were added.
 *
 * <p>Not thread-safe; a writer holds everything in memory until {@link #write(Path)}.
 */
public final class GgufWriter {
    private final Map<String, GgufValue> metadata = new LinkedHashMap<>();
    private final List<Tensor> tensors = new ArrayList<>();
    private final Set<String> tensorNames = new HashSet<>();

    private record Tensor(String name, GgmlType type, long[] ne, byte[] data) {}

    /** Adds a metadata entry; keys must be unique. */
    public GgufWriter put(String key, GgufValue value) {
        Objects.requireNonNull(key, "key");
        Objects.requireNonNull(value, "value");
        if (metadata.containsKey(key)) {
            throw new IllegalArgumentException("duplicate metadata key '" + key + "'");
        }
        if (key.equals(GgufParser.ALIGNMENT_KEY)) {
            long a = value.type() == GgufValueType.UINT32 ? (Long) value.value() : -1;
            if (a <= 0 || (a & (a - 1)) != 0 || a > (1 << 30)) {
                throw new IllegalArgumentException(
                        GgufParser.ALIGNMENT_KEY + " must be a UINT32 power of two in [1, 2^30], was " + value);
            }
        }
        metadata.put(key, value);
        return this;
    }

    public GgufWriter putString(String key, String value) {
        return put(key, GgufValue.ofString(value));
    }

    public GgufWriter putUInt32(String key, long value) {
        return put(key, GgufValue.ofUInt32(value));
    }

    public GgufWriter putInt32(String key, int value) {
        return put(key, GgufValue.ofInt32(value));
    }

    public GgufWriter putUInt64(String key, long value) {
        return put(key, GgufValue.ofUInt64(value));
    }

    public GgufWriter putFloat32(String key, float value) {
        return put(key, GgufValue.ofFloat32(value));
    }

    public GgufWriter putBool(String key, boolean value) {
        return put(key, GgufValue.ofBool(value));
    }

    public GgufWriter putArray(String key, GgufArray value) {
        return put(key, GgufValue.ofArray(value));
    }

    /**
     * Adds a tensor from floats, encoded as {@code type} (F32, F16, BF16, Q8_0 or Q4_0).
     *
     * @param ne the shape in ggml order ({@code ne[0]} elements per row), 1 to 4 dimensions
     * @param values {@code ne[0]·ne[1]·…} floats, row-major
     */
    public GgufWriter addTensor(String name, GgmlType type, long[] ne, float[] values) {
        long n = checkShape(name, type, ne);
        if (values.length != n) {
            throw new IllegalArgumentException("tensor '" + name + "' shape " + Arrays.toString(ne) + " needs " + n
                    + " values, got " + values.length);
        }
        long bytes = type.bytesFor(n);
        if (bytes > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(
                    "tensor '" + name + "' is " + bytes + " bytes; at most " + (Integer.MAX_VALUE - 8) + " per tensor");
        }
        byte[] data = new byte[(int) bytes];
        GgmlQuants.quantize(type, values, 0, (int) n, data, 0);
        tensors.add(new Tensor(name, type, ne.clone(), data));
        tensorNames.add(name);
        return this;
    }

    /** Adds a tensor of any type from bytes already in the type's block layout. */
    public GgufWriter addTensorBytes(String name, GgmlType type, long[] ne, byte[] data) {
        long n = checkShape(name, type, ne);
        long bytes = type.bytesFor(n);
        if (data.length != bytes) {
            throw new IllegalArgumentException("tensor '" + name + "' of " + n + " " + type + " elements needs " + bytes
                    + " bytes, got " + data.length);
        }
        tensors.add(new Tensor(name, type, ne.clone(), data.clone()));
        tensorNames.add(name);
        return this;
    }

    private long checkShape(String name, GgmlType type, long[] ne) {
        Objects.requireNonNull(name, "name");
        int nameBytes = name.getBytes(StandardCharsets.UTF_8).length;
        if (nameBytes > GgufParser.MAX_TENSOR_NAME_BYTES) {
            throw new IllegalArgumentException("tensor name '" + name + "' is " + nameBytes + " bytes; at most "
                    + GgufParser.MAX_TENSOR_NAME_BYTES + " allowed");
        }
        if (tensorNames.contains(name)) {
            throw new IllegalArgumentException("duplicate tensor name '" + name + "'");
        }
        if (ne.length < 1 || ne.length > GgufParser.MAX_DIMS) {
            throw new IllegalArgumentException(
                    "tensor '" + name + "' has " + ne.length + " dimensions; allowed: 1.." + GgufParser.MAX_DIMS);
        }
        long n = 1;
        for (int i = 0; i < ne.length; i++) {
            if (ne[i] < 0) {
                throw new IllegalArgumentException("tensor '" + name + "' ne[" + i + "] = " + ne[i] + " must be >= 0");
            }
            n = Math.multiplyExact(n, ne[i]);
        }
        if (ne[0] % type.blockSize() != 0) {
            throw new IllegalArgumentException("tensor '" + name + "' of type " + type + " has ne[0] = " + ne[0]
                    + ", not a multiple of the block size " + type.blockSize());
        }
        return n;
    }

    /** Writes the file (replacing an existing one). */
    public void write(Path path) throws IOException {
        try (OutputStream out = Files.newOutputStream(path)) {
            writeTo(out);
        }
    }

    /** The whole file as bytes. */
    public byte[] toByteArray() {
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try {
            writeTo(bos);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return bos.toByteArray();
    }

    private void writeTo(OutputStream sink) throws IOException {
        int alignment = GgufParser.DEFAULT_ALIGNMENT;
        GgufValue a = metadata.get(GgufParser.ALIGNMENT_KEY);
        if (a != null) {
            alignment = (int) (long) (Long) a.value();
        }
        LeBuffer h = new LeBuffer();
        h.u32(GgufParser.MAGIC);
        h.u32(3);
        h.u64(tensors.size());
        h.u64(metadata.size());
        for (Map.Entry<String, GgufValue> e : metadata.entrySet()) {
            h.string(e.getKey().getBytes(StandardCharsets.UTF_8));
            h.u32(e.getValue().type().id());
            writeValue(h, e.getValue());
        }
        long offset = 0;
        for (Tensor t : tensors) {
            h.string(t.name.getBytes(StandardCharsets.UTF_8));
            h.u32(t.ne.length);
            for (long d : t.ne) {
                h.u64(d);
            }
            h.u32(t.type.id());
            h.u64(offset);
            offset = GgufParser.alignUp(offset + t.data.length, alignment);
        }
        h.pad(alignment);
        sink.write(h.bytes(), 0, h.size());
        byte[] zeros = new byte[alignment];
        for (Tensor t : tensors) {
            sink.write(t.data);
            int pad = (int) (GgufParser.alignUp(t.data.length, alignment) - t.data.length);
            sink.write(zeros, 0, pad);
        }
    }

    private static void writeValue(LeBuffer h, GgufValue v) {
        switch (v.type()) {
            case UINT8, INT8 -> h.u8((int) (long) (Long) v.value());
            case UINT16, INT16 -> h.u16((int) (long) (Long) v.value());
            case UINT32, INT32 -> h.u32((int) (long) (Long) v.value());
            case UINT64, INT64 -> h.u64((Long) v.value());
            case FLOAT32 -> h.u32(Float.floatToRawIntBits((Float) v.value()));
            case FLOAT64 -> h.u64(Double.doubleToRawLongBits((Double) v.value()));
            case BOOL -> h.u8((Boolean) v.value() ? 1 : 0);
            case STRING -> h.string(((String) v.value()).getBytes(StandardCharsets.UTF_8));
            case ARRAY -> writeArray(h, (GgufArray) v.value());
        }
    }

    private static void writeArray(LeBuffer h, GgufArray arr) {
        GgufValueType et = arr.elementType();
        h.u32(et.id());
        h.u64(arr.size());
        switch (arr.data()) {
            case long[] l -> {
                for (long x : l) {
                    switch (et) {
                        case UINT8, INT8 -> h.u8((int) x);
                        case UINT16, INT16 -> h.u16((int) x);
                        case UINT32, INT32 -> h.u32((int) x);
                        default -> h.u64(x);
                    }
                }
            }
            case float[] f -> {
                for (float x : f) {
                    h.u32(Float.floatToRawIntBits(x));
                }
            }
            case double[] d -> {
                for (double x : d) {
                    h.u64(Double.doubleToRawLongBits(x));
                }
            }
            case boolean[] b -> {
                for (boolean x : b) {
                    h.u8(x ? 1 : 0);
                }
            }
            case byte[][] s -> {
                for (byte[] x : s) {
                    h.string(x);
                }
            }
            case GgufArray[] g -> {
                for (GgufArray x : g) {
                    writeArray(h, x);
                }
            }
            default ->
                throw new IllegalStateException(
                        "unexpected array storage " + arr.data().getClass());
        }
    }

    /** A growable little-endian byte buffer. */
    private static final class LeBuffer {
        private byte[] buf = new byte[4096];
        private int size;

        private void ensure(int n) {
            if (buf.length - size < n) {
                long want = Math.max((long) buf.length * 2, (long) size + n);
                if (want > Integer.MAX_VALUE - 8) {
                    throw new IllegalStateException("GGUF header larger than 2 GiB");
                }
                buf = Arrays.copyOf(buf, (int) want);
            }
        }

        void u8(int v) {
            ensure(1);
            buf[size++] = (byte) v;
        }

        void u16(int v) {
            ensure(2);
            buf[size++] = (byte) v;
            buf[size++] = (byte) (v >>> 8);
        }

        void u32(int v) {
            ensure(4);
            for (int i = 0; i < 4; i++) {
                buf[size++] = (byte) (v >>> (8 * i));
            }
        }

        void u64(long v) {
            ensure(8);
            for (int i = 0; i < 8; i++) {
                buf[size++] = (byte) (v >>> (8 * i));
            }
        }

        void string(byte[] b) {
            u64(b.length);
            ensure(b.length);
            System.arraycopy(b, 0, buf, size, b.length);
            size += b.length;
        }

        void pad(int alignment) {
            int target = (int) GgufParser.alignUp(size, alignment);
            ensure(target - size);
            size = target; // the buffer is zero-filled beyond size
        }

        byte[] bytes() {
            return buf;
        }

        int size() {
            return size;
        }
    }
}
