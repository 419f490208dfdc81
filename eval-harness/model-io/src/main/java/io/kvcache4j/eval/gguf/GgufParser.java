package io.kvcache4j.eval.gguf;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Reads the header, metadata and tensor infos of a GGUF v2/v3 file from a segment. Every count and
 * length is checked against the bytes that remain before anything is allocated, so a corrupt file
 * fails with a {@link GgufFormatException} naming the key or tensor and the offending value rather
 * than with an {@link OutOfMemoryError}, a hang, or a silently wrong value.
 */
final class GgufParser {
    static final int MAGIC = 0x46554747; // "GGUF" read as a little-endian int
    static final int HEADER_BYTES = 24; // magic, version, tensor count, metadata count
    static final int DEFAULT_ALIGNMENT = 32;
    static final String ALIGNMENT_KEY = "general.alignment";
    /** ggml's GGML_MAX_NAME is 64 bytes including the terminating NUL. */
    static final int MAX_TENSOR_NAME_BYTES = 63;

    static final int MAX_DIMS = 4;
    /** Deeper nesting than this is treated as corruption (real files nest at most once). */
    static final int MAX_ARRAY_NESTING = 8;

    private static final int MIN_KV_BYTES = 8 + 4 + 1;
    private static final int MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8;

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64 =
            ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** What a successful parse found. */
    record Result(
            int version,
            Map<String, GgufValue> metadata,
            List<GgufTensorInfo> tensors,
            int alignment,
            long dataOffset) {}

    private final MemorySegment seg;
    private final String source;
    private final long size;
    private long pos;

    private GgufParser(MemorySegment seg, String source) {
        this.seg = seg;
        this.source = source;
        this.size = seg.byteSize();
    }

    static Result parse(MemorySegment seg, String source) {
        return new GgufParser(seg, source).parse();
    }

    private Result parse() {
        if (size < HEADER_BYTES) {
            throw fail("file is " + size + " bytes, shorter than the " + HEADER_BYTES + "-byte GGUF header");
        }
        int magic = seg.get(U32, 0);
        if (magic != MAGIC) {
            throw fail(String.format(
                    "bad magic 0x%08x at offset 0 (a GGUF file starts with the bytes \"GGUF\", 0x%08x as little-endian int)",
                    magic, MAGIC));
        }
        pos = 4;
        int version = readU32Raw();
        if (version != 2 && version != 3) {
            if (version == 1) {
                throw fail("GGUF version 1 is not supported; allowed versions: 2, 3");
            }
            int swapped = Integer.reverseBytes(version);
            if (swapped == 2 || swapped == 3) {
                throw fail("big-endian GGUF file (version field reads " + swapped
                        + " byte-swapped); only little-endian files are supported");
            }
            throw fail("unsupported GGUF version " + Integer.toUnsignedString(version) + "; allowed versions: 2, 3");
        }
        long tensorCount = readU64("tensor count");
        long kvCount = readU64("metadata count");
        checkCount(kvCount, MIN_KV_BYTES, "metadata count (key/value pairs)");
        checkCount(tensorCount, MIN_TENSOR_INFO_BYTES, "tensor count");

        Map<String, GgufValue> metadata = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            long keyAt = pos;
            String key = readString("key of metadata entry #" + i);
            if (metadata.containsKey(key)) {
                throw fail("duplicate metadata key '" + key + "' at offset " + keyAt);
            }
            long typeAt = pos;
            long typeId = readU32("type of metadata key '" + key + "'");
            GgufValueType type = GgufValueType.fromId(typeId);
            if (type == null) {
                throw fail("metadata key '" + key + "' has unknown value type " + typeId + " at offset " + typeAt
                        + "; allowed: 0..12");
            }
            metadata.put(key, readValue(type, key, 0));
        }

        int alignment = DEFAULT_ALIGNMENT;
        GgufValue a = metadata.get(ALIGNMENT_KEY);
        if (a != null) {
            if (a.type() != GgufValueType.UINT32) {
                throw fail("metadata key '" + ALIGNMENT_KEY + "' must be UINT32, is " + a.type());
            }
            long al = (Long) a.value();
            if (al <= 0 || (al & (al - 1)) != 0 || al > (1 << 30)) {
                throw fail("metadata key '" + ALIGNMENT_KEY + "' = " + al + " is not a power of two in [1, 2^30]");
            }
            alignment = (int) al;
        }

        List<GgufTensorInfo> raw = new ArrayList<>();
        Set<String> names = new HashSet<>();
        long[][] shapes = new long[(int) tensorCount][];
        GgmlType[] types = new GgmlType[(int) tensorCount];
        long[] offsets = new long[(int) tensorCount];
        String[] tensorNames = new String[(int) tensorCount];
        for (int i = 0; i < tensorCount; i++) {
            long nameAt = pos;
            byte[] nameRaw = readStringBytes("name of tensor #" + i);
            int nameBytes = nameRaw.length;
            String name = new String(nameRaw, StandardCharsets.UTF_8);
            if (nameBytes > MAX_TENSOR_NAME_BYTES) {
                throw fail("tensor #" + i + " name at offset " + nameAt + " is " + nameBytes + " bytes; at most "
                        + MAX_TENSOR_NAME_BYTES + " allowed");
            }
            if (!names.add(name)) {
                throw fail("duplicate tensor name '" + name + "' at offset " + nameAt);
            }
            long nDims = readU32("dimension count of tensor '" + name + "'");
            if (nDims > MAX_DIMS) {
                throw fail("tensor '" + name + "' has " + nDims + " dimensions; allowed: 0.." + MAX_DIMS);
            }
            long[] ne = new long[(int) nDims];
            for (int d = 0; d < nDims; d++) {
                ne[d] = readI64("ne[" + d + "] of tensor '" + name + "'");
                if (ne[d] < 0) {
                    throw fail("tensor '" + name + "' has negative ne[" + d + "] = " + ne[d]);
                }
            }
            long typeAt = pos;
            long typeId = readU32("type of tensor '" + name + "'");
            GgmlType type = GgmlType.fromId(typeId);
            if (type == null) {
                throw fail("tensor '" + name + "' has unknown ggml type id " + typeId + " at offset " + typeAt);
            }
            long offset = readU64("data offset of tensor '" + name + "'");
            tensorNames[i] = name;
            shapes[i] = ne;
            types[i] = type;
            offsets[i] = offset;
        }

        long dataOffset = alignUp(pos, alignment);
        long dataBytes = Math.max(0, size - dataOffset);
        for (int i = 0; i < tensorCount; i++) {
            String name = tensorNames[i];
            long[] ne = shapes[i];
            GgmlType type = types[i];
            long offset = offsets[i];
            long elements = 1;
            for (long d : ne) {
                try {
                    elements = Math.multiplyExact(elements, d);
                } catch (ArithmeticException e) {
                    throw fail("tensor '" + name + "' shape " + java.util.Arrays.toString(ne)
                            + " has more elements than a long can count");
                }
            }
            long row = ne.length > 0 ? ne[0] : 1;
            if (row % type.blockSize() != 0) {
                throw fail("tensor '" + name + "' of type " + type + " has ne[0] = " + row
                        + ", not a multiple of the block size " + type.blockSize());
            }
            long bytes;
            try {
                bytes = type.bytesFor(elements);
            } catch (ArithmeticException e) {
                throw fail(
                        "tensor '" + name + "' byte size overflows a long (" + elements + " elements of " + type + ")");
            }
            if (offset < 0 || offset % alignment != 0) {
                throw fail("tensor '" + name + "' data offset " + Long.toUnsignedString(offset)
                        + " is not a multiple of the alignment " + alignment);
            }
            if (bytes > dataBytes || offset > dataBytes - bytes) {
                throw fail("tensor '" + name + "' data [" + Long.toUnsignedString(offset) + ", "
                        + Long.toUnsignedString(offset + bytes) + ") of the data section lies past the end of the file"
                        + " (data section starts at " + dataOffset + " and has " + dataBytes + " bytes; file is "
                        + size + " bytes)");
            }
            raw.add(new GgufTensorInfo(name, type, ne, offset, dataOffset + offset, bytes));
        }

        List<GgufTensorInfo> byOffset = new ArrayList<>(raw);
        byOffset.sort(Comparator.comparingLong(GgufTensorInfo::dataOffset));
        GgufTensorInfo prev = null;
        for (GgufTensorInfo t : byOffset) {
            if (t.byteSize() == 0) {
                continue;
            }
            if (prev != null && t.dataOffset() < prev.dataOffset() + prev.byteSize()) {
                throw fail("tensor '" + t.name() + "' at data offset " + t.dataOffset() + " overlaps tensor '"
                        + prev.name() + "' which occupies [" + prev.dataOffset() + ", "
                        + (prev.dataOffset() + prev.byteSize()) + ")");
            }
            prev = t;
        }
        return new Result(version, Collections.unmodifiableMap(metadata), List.copyOf(raw), alignment, dataOffset);
    }

    private GgufValue readValue(GgufValueType type, String key, int depth) {
        return switch (type) {
            case UINT8 -> new GgufValue(type, (long) (readBytes(1, key)[0] & 0xFF));
            case INT8 -> new GgufValue(type, (long) readBytes(1, key)[0]);
            case UINT16 -> new GgufValue(type, (long) (readU16(key) & 0xFFFF));
            case INT16 -> new GgufValue(type, (long) readU16(key));
            case UINT32 -> new GgufValue(type, readU32(key));
            case INT32 -> new GgufValue(type, (long) (int) readU32(key));
            case UINT64, INT64 -> new GgufValue(type, readI64(key));
            case FLOAT32 -> {
                need(4, key);
                float f = seg.get(F32, pos);
                pos += 4;
                yield new GgufValue(type, f);
            }
            case FLOAT64 -> {
                need(8, key);
                double d = seg.get(F64, pos);
                pos += 8;
                yield new GgufValue(type, d);
            }
            case BOOL -> new GgufValue(type, readBool(key));
            case STRING -> new GgufValue(type, readString("value of metadata key '" + key + "'"));
            case ARRAY -> new GgufValue(type, readArray(key, depth + 1));
        };
    }

    private GgufArray readArray(String key, int depth) {
        if (depth > MAX_ARRAY_NESTING) {
            throw fail("metadata key '" + key + "' nests arrays " + depth + " deep at offset " + pos + "; at most "
                    + MAX_ARRAY_NESTING + " allowed");
        }
        long typeAt = pos;
        long typeId = readU32("array element type of metadata key '" + key + "'");
        GgufValueType et = GgufValueType.fromId(typeId);
        if (et == null) {
            throw fail("metadata key '" + key + "' is an array of unknown element type " + typeId + " at offset "
                    + typeAt + "; allowed: 0..12");
        }
        long countAt = pos;
        long n = readU64("array length of metadata key '" + key + "'");
        long left = size - pos;
        if (n < 0 || n > left / et.minBytes()) {
            throw fail("metadata key '" + key + "' claims " + Long.toUnsignedString(n) + " " + et
                    + " elements at offset " + countAt + ", but only " + left + " bytes remain (at least "
                    + et.minBytes() + " per element)");
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw fail("metadata key '" + key + "' array length " + n + " exceeds " + (Integer.MAX_VALUE - 8));
        }
        int count = (int) n;
        String what = "elements of metadata key '" + key + "'";
        Object data = switch (et) {
            case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> {
                int w = et.minBytes();
                need((long) count * w, what);
                long[] out = new long[count];
                for (int i = 0; i < count; i++) {
                    long at = pos + (long) i * w;
                    out[i] = switch (et) {
                        case UINT8 -> seg.get(ValueLayout.JAVA_BYTE, at) & 0xFFL;
                        case INT8 -> seg.get(ValueLayout.JAVA_BYTE, at);
                        case UINT16 -> seg.get(U16, at) & 0xFFFFL;
                        case INT16 -> seg.get(U16, at);
                        case UINT32 -> seg.get(U32, at) & 0xFFFF_FFFFL;
                        case INT32 -> seg.get(U32, at);
                        default -> seg.get(U64, at);
                    };
                }
                pos += (long) count * w;
                yield out;
            }
            case FLOAT32 -> {
                need(4L * count, what);
                float[] out = new float[count];
                MemorySegment.copy(seg, F32, pos, out, 0, count);
                pos += 4L * count;
                yield out;
            }
            case FLOAT64 -> {
                need(8L * count, what);
                double[] out = new double[count];
                MemorySegment.copy(seg, F64, pos, out, 0, count);
                pos += 8L * count;
                yield out;
            }
            case BOOL -> {
                need(count, what);
                boolean[] out = new boolean[count];
                for (int i = 0; i < count; i++) {
                    out[i] = readBool(key + "[" + i + "]");
                }
                yield out;
            }
            case STRING -> {
                byte[][] out = new byte[count][];
                for (int i = 0; i < count; i++) {
                    out[i] = readStringBytes("element " + i + " of metadata key '" + key + "'");
                }
                yield out;
            }
            case ARRAY -> {
                GgufArray[] out = new GgufArray[count];
                for (int i = 0; i < count; i++) {
                    out[i] = readArray(key + "[" + i + "]", depth + 1);
                }
                yield out;
            }
        };
        return GgufArray.wrap(et, count, data);
    }

    private boolean readBool(String what) {
        long at = pos;
        byte b = readBytes(1, what)[0];
        if (b != 0 && b != 1) {
            throw fail("BOOL " + what + " at offset " + at + " has byte value " + (b & 0xFF) + "; allowed: 0, 1");
        }
        return b == 1;
    }

    private String readString(String what) {
        return new String(readStringBytes(what), StandardCharsets.UTF_8);
    }

    private byte[] readStringBytes(String what) {
        long at = pos;
        long len = readU64("length of " + what);
        long left = size - pos;
        if (len < 0 || len > left) {
            throw fail("length " + Long.toUnsignedString(len) + " of " + what + " at offset " + at + " exceeds the "
                    + left + " bytes that remain");
        }
        if (len > Integer.MAX_VALUE - 8) {
            throw fail("length " + len + " of " + what + " at offset " + at + " exceeds " + (Integer.MAX_VALUE - 8));
        }
        return readBytes((int) len, what);
    }

    private byte[] readBytes(int n, String what) {
        need(n, what);
        byte[] b = new byte[n];
        MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, pos, b, 0, n);
        pos += n;
        return b;
    }

    private short readU16(String what) {
        need(2, what);
        short v = seg.get(U16, pos);
        pos += 2;
        return v;
    }

    private int readU32Raw() {
        int v = seg.get(U32, pos);
        pos += 4;
        return v;
    }

    private long readU32(String what) {
        need(4, what);
        return readU32Raw() & 0xFFFF_FFFFL;
    }

    private long readI64(String what) {
        need(8, what);
        long v = seg.get(U64, pos);
        pos += 8;
        return v;
    }

    private long readU64(String what) {
        long at = pos;
        long v = readI64(what);
        if (v < 0) {
            throw fail(what + " " + Long.toUnsignedString(v) + " at offset " + at + " exceeds " + Long.MAX_VALUE);
        }
        return v;
    }

    private void checkCount(long count, int minBytesEach, String what) {
        long left = size - pos;
        if (count > left / minBytesEach || count > Integer.MAX_VALUE - 8) {
            throw fail(what + " " + count + " is impossible: " + left + " bytes remain and each entry needs at least "
                    + minBytesEach);
        }
    }

    private void need(long n, String what) {
        if (n > size - pos) {
            throw fail("truncated: " + what + " needs " + n + " bytes at offset " + pos + ", file has " + size);
        }
    }

    private GgufFormatException fail(String message) {
        return new GgufFormatException(source + ": " + message);
    }

    static long alignUp(long x, int alignment) {
        return (x + alignment - 1) & -(long) alignment;
    }
}
