package io.kvcache4j.eval.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The writer's files read back by the reader: every metadata type, tensor types, alignment, versions. */
class GgufRoundTripTest {
    @TempDir
    Path dir;

    static GgufWriter everyValueType() {
        return new GgufWriter()
                .put("u8", GgufValue.ofUInt8(255))
                .put("i8", GgufValue.ofInt8(-128))
                .put("u16", GgufValue.ofUInt16(65535))
                .put("i16", GgufValue.ofInt16(-32768))
                .put("u32", GgufValue.ofUInt32(0xFFFF_FFFFL))
                .put("i32", GgufValue.ofInt32(Integer.MIN_VALUE))
                .put("u64", GgufValue.ofUInt64(-1L))
                .put("i64", GgufValue.ofInt64(Long.MIN_VALUE))
                .put("f32", GgufValue.ofFloat32(-1.5e-7f))
                .put("f64", GgufValue.ofFloat64(Math.PI))
                .put("bool.t", GgufValue.ofBool(true))
                .put("bool.f", GgufValue.ofBool(false))
                .put("str", GgufValue.ofString("héllo ▁ 🦙"))
                .put("str.empty", GgufValue.ofString(""))
                .putArray("arr.u8", GgufArray.ofIntegers(GgufValueType.UINT8, 0, 1, 255))
                .putArray("arr.i8", GgufArray.ofIntegers(GgufValueType.INT8, -128, 0, 127))
                .putArray("arr.u16", GgufArray.ofIntegers(GgufValueType.UINT16, 0, 65535))
                .putArray("arr.i16", GgufArray.ofIntegers(GgufValueType.INT16, -32768, 32767))
                .putArray("arr.u32", GgufArray.ofIntegers(GgufValueType.UINT32, 0, 0xFFFF_FFFFL))
                .putArray("arr.i32", GgufArray.ofInt32(-1, 2, -3))
                .putArray("arr.u64", GgufArray.ofIntegers(GgufValueType.UINT64, -1L, 5))
                .putArray("arr.i64", GgufArray.ofIntegers(GgufValueType.INT64, Long.MIN_VALUE, Long.MAX_VALUE))
                .putArray("arr.f32", GgufArray.ofFloat32(1f, -0f, Float.MIN_VALUE))
                .putArray("arr.f64", GgufArray.ofFloat64(1e300, -2.5))
                .putArray("arr.bool", GgufArray.ofBools(true, false, true))
                .putArray("arr.str", GgufArray.ofStrings(List.of("a", "", "ü")))
                .putArray("arr.bytes", GgufArray.ofStringBytes(new byte[] {(byte) 0xff, 0x41}))
                .putArray("arr.empty", GgufArray.ofInt32())
                .putArray(
                        "arr.nested",
                        GgufArray.ofArrays(
                                GgufArray.ofInt32(1, 2),
                                GgufArray.ofStrings(List.of("x")),
                                GgufArray.ofArrays(GgufArray.ofFloat32(3f))));
    }

    @Test
    void everyMetadataTypeRoundTrips() throws Exception {
        GgufWriter w = everyValueType();
        Path p = dir.resolve("meta.gguf");
        w.write(p);
        try (GgufModel m = GgufModel.open(p)) {
            assertEquals(3, m.version());
            assertEquals(29, m.metadata().size());
            assertEquals(255, m.getInt("u8"));
            assertEquals(-128, m.getInt("i8"));
            assertEquals(65535, m.getInt("u16"));
            assertEquals(-32768, m.getInt("i16"));
            assertEquals(0xFFFF_FFFFL, m.getLong("u32"));
            assertEquals(Integer.MIN_VALUE, m.getInt("i32"));
            assertEquals(-1L, (long) (Long) m.get("u64").value());
            assertEquals(GgufValueType.UINT64, m.get("u64").type());
            assertEquals(Long.MIN_VALUE, m.getLong("i64"));
            assertEquals(-1.5e-7f, m.getFloat("f32"));
            assertEquals(Math.PI, (Double) m.get("f64").value());
            assertTrue(m.getBoolean("bool.t"));
            assertFalse(m.getBoolean("bool.f"));
            assertEquals("héllo ▁ 🦙", m.getString("str"));
            assertEquals("", m.getString("str.empty"));
            assertArrayEquals(new int[] {0, 1, 255}, m.getArray("arr.u8").toIntArray());
            assertArrayEquals(new int[] {-128, 0, 127}, m.getArray("arr.i8").toIntArray());
            assertArrayEquals(new int[] {0, 65535}, m.getArray("arr.u16").toIntArray());
            assertArrayEquals(new int[] {-32768, 32767}, m.getArray("arr.i16").toIntArray());
            assertEquals(0xFFFF_FFFFL, m.getArray("arr.u32").getLong(1));
            assertArrayEquals(new int[] {-1, 2, -3}, m.getArray("arr.i32").toIntArray());
            assertEquals(0x1p64 - 1, m.getArray("arr.u64").getDouble(0), 1e6);
            assertEquals(Long.MAX_VALUE, m.getArray("arr.i64").getLong(1));
            assertArrayEquals(
                    new float[] {1f, -0f, Float.MIN_VALUE},
                    m.getArray("arr.f32").toFloatArray());
            assertEquals(-2.5, m.getArray("arr.f64").getDouble(1));
            assertTrue(m.getArray("arr.bool").getBoolean(2));
            assertEquals(List.of("a", "", "ü"), m.getArray("arr.str").toStringList());
            assertArrayEquals(
                    new byte[] {(byte) 0xff, 0x41}, m.getArray("arr.bytes").getStringBytes(0));
            assertEquals(0, m.getArray("arr.empty").size());
            GgufArray nested = m.getArray("arr.nested");
            assertEquals(GgufValueType.ARRAY, nested.elementType());
            assertArrayEquals(new int[] {1, 2}, nested.getArray(0).toIntArray());
            assertEquals("x", nested.getArray(1).getString(0));
            assertEquals(3f, nested.getArray(2).getArray(0).toFloatArray()[0]);
            // the reader's values equal the writer's
            byte[] again = copyOf(m).toByteArray();
            assertArrayEquals(Files.readAllBytes(p), again);
        }
    }

    private static GgufWriter copyOf(GgufModel m) {
        GgufWriter w = new GgufWriter();
        m.metadata().forEach(w::put);
        return w;
    }

    @Test
    void typedGettersNameTheKeyAndTheProblem() throws Exception {
        Path p = dir.resolve("meta.gguf");
        everyValueType().write(p);
        try (GgufModel m = GgufModel.open(p)) {
            GgufFormatException missing = assertThrows(GgufFormatException.class, () -> m.getString("nope"));
            assertTrue(missing.getMessage().contains("missing metadata key 'nope'"), missing.getMessage());
            GgufFormatException wrong = assertThrows(GgufFormatException.class, () -> m.getString("u32"));
            assertTrue(
                    wrong.getMessage().contains("'u32' is UINT32 (4294967295), expected STRING"), wrong.getMessage());
            GgufFormatException tooBig = assertThrows(GgufFormatException.class, () -> m.getInt("u32"));
            assertTrue(tooBig.getMessage().contains("4294967295 does not fit an int"), tooBig.getMessage());
            assertThrows(GgufFormatException.class, () -> m.getLong("u64"));
            assertThrows(GgufFormatException.class, () -> m.getFloat("i32"));
            assertThrows(GgufFormatException.class, () -> m.getArray("str"));
            assertThrows(GgufFormatException.class, () -> m.getArray("arr.str").toIntArray());
            assertEquals("dflt", m.getString("nope", "dflt"));
            assertEquals(7, m.getInt("nope", 7));
            assertThrows(
                    GgufFormatException.class, () -> m.getInt("str", 7), "type mismatch is not masked by a default");
            GgufFormatException noTensor = assertThrows(GgufFormatException.class, () -> m.tensor("w"));
            assertTrue(noTensor.getMessage().contains("no tensor named 'w'"), noTensor.getMessage());
        }
    }

    @Test
    void tensorsRoundTripAlignedAndMapped() throws Exception {
        long seed = TestSeeds.seed("tensors-roundtrip");
        SplittableRandom r = TestSeeds.random(seed);
        float[] f32 = TestSeeds.floats(r, 3 * 5, 2f);
        float[] f16 = TestSeeds.floats(r, 7, 2f);
        float[] bf16 = TestSeeds.floats(r, 2 * 3 * 4, 2f);
        float[] q8 = TestSeeds.floats(r, 64 * 3, 1f);
        float[] q4 = TestSeeds.floats(r, 32 * 2, 1f);
        GgufWriter w = new GgufWriter()
                .putUInt32("general.alignment", 64)
                .putString("general.architecture", "test")
                .addTensor("f32", GgmlType.F32, new long[] {5, 3}, f32)
                .addTensor("f16", GgmlType.F16, new long[] {7}, f16)
                .addTensor("bf16", GgmlType.BF16, new long[] {4, 3, 2}, bf16)
                .addTensor("q8", GgmlType.Q8_0, new long[] {64, 3}, q8)
                .addTensor("q4", GgmlType.Q4_0, new long[] {32, 2}, q4);
        Path p = dir.resolve("t.gguf");
        w.write(p);
        GgufModel m = GgufModel.open(p);
        try {
            assertEquals(64, m.alignment());
            assertEquals(0, m.dataSectionOffset() % 64);
            assertEquals(5, m.tensors().size());
            for (GgufTensorInfo t : m.tensors()) {
                assertEquals(0, t.fileOffset() % 64, t.name() + " seed=" + seed);
                assertTrue(m.tensorData(t.name()).isReadOnly());
            }
            GgufTensorInfo bt = m.tensor("bf16");
            assertArrayEquals(new long[] {4, 3, 2}, bt.ne());
            assertEquals(4, bt.rowLength());
            assertEquals(6, bt.rowCount());
            assertEquals(48, bt.byteSize());
            assertArrayEquals(f32, m.floats("f32"), "seed=" + seed);
            for (int i = 0; i < f16.length; i++) {
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(f16[i])), m.floats("f16")[i], "seed=" + seed);
            }
            for (int i = 0; i < bf16.length; i++) {
                assertEquals(Math.abs(bf16[i]), Math.abs(m.floats("bf16")[i]), Math.abs(bf16[i]) / 128, "seed=" + seed);
            }
            float[] q8back = m.floats("q8");
            for (int b = 0; b < q8.length / 32; b++) {
                float amax = 0;
                for (int j = 0; j < 32; j++) {
                    amax = Math.max(amax, Math.abs(q8[32 * b + j]));
                }
                for (int j = 0; j < 32; j++) {
                    assertEquals(q8[32 * b + j], q8back[32 * b + j], amax / 127 * 0.51 + amax * 1e-3, "seed=" + seed);
                }
            }
            WeightMatrix wq = m.weights("q8");
            assertEquals(3, wq.rows());
            assertEquals(64, wq.cols());
            assertEquals(GgmlType.Q8_0, wq.type());
            float[] row = new float[64];
            wq.rowToFloats(2, row, 0);
            assertArrayEquals(java.util.Arrays.copyOfRange(q8back, 128, 192), row);
        } finally {
            m.close();
        }
        assertFalse(m.isOpen());
        assertThrows(
                IllegalStateException.class, () -> m.tensorData("f32").get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
        m.close(); // idempotent
    }

    @Test
    void weightsAreReadInPlaceNotCopied() throws Exception {
        float[] v = {1, 2, 3, 4, 5, 6, 7, 8};
        Path p = dir.resolve("w.gguf");
        new GgufWriter().addTensor("w", GgmlType.F32, new long[] {4, 2}, v).write(p);
        try (GgufModel m = GgufModel.open(p)) {
            MemorySegment data = m.tensorData("w");
            assertTrue(data.isMapped(), "tensor bytes come from the file mapping");
            WeightMatrix w = m.weights("w");
            WeightMatrix w2 = m.weights("w");
            float[] x = {1, 1, 1, 1};
            assertEquals(10f, w.dotRow(0, x, 0));
            assertEquals(26f, w2.dotRow(1, x, 0));
            m.close();
            assertThrows(IllegalStateException.class, () -> w.dotRow(0, x, 0), "use after close fails loudly");
        }
    }

    @Test
    void version2FilesAreRead() throws Exception {
        byte[] b = new GgufWriter()
                .putString("k", "v")
                .addTensor("t", GgmlType.F32, new long[] {2}, new float[] {1, 2})
                .toByteArray();
        b[4] = 2; // v2 differs from v3 only in allowing big-endian files, which this reader rejects
        Path p = dir.resolve("v2.gguf");
        Files.write(p, b);
        try (GgufModel m = GgufModel.open(p)) {
            assertEquals(2, m.version());
            assertEquals("v", m.getString("k"));
            assertArrayEquals(new float[] {1, 2}, m.floats("t"));
        }
    }

    @Test
    void unsupportedTypesOpenButHaveNoKernel() throws Exception {
        Path p = dir.resolve("q5.gguf");
        new GgufWriter()
                .addTensorBytes("q5", GgmlType.Q5_K, new long[] {256}, new byte[176])
                .write(p);
        try (GgufModel m = GgufModel.open(p)) {
            assertEquals(GgmlType.Q5_K, m.tensor("q5").type());
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> m.weights("q5"));
            assertTrue(e.getMessage().contains("'q5' has type Q5_K"), e.getMessage());
        }
    }

    @Test
    void writerRejectsBadInput() {
        GgufWriter w = new GgufWriter();
        assertThrows(
                IllegalArgumentException.class, () -> w.addTensor("t", GgmlType.Q8_0, new long[] {33}, new float[33]));
        assertThrows(
                IllegalArgumentException.class, () -> w.addTensor("t", GgmlType.F32, new long[] {3}, new float[4]));
        assertThrows(
                IllegalArgumentException.class,
                () -> w.addTensor("t", GgmlType.F32, new long[] {1, 1, 1, 1, 1}, new float[1]));
        assertThrows(
                IllegalArgumentException.class,
                () -> w.addTensor("x".repeat(64), GgmlType.F32, new long[] {1}, new float[1]));
        w.addTensor("t", GgmlType.F32, new long[] {1}, new float[1]);
        assertThrows(
                IllegalArgumentException.class, () -> w.addTensor("t", GgmlType.F32, new long[] {1}, new float[1]));
        assertThrows(IllegalArgumentException.class, () -> w.putUInt32("general.alignment", 48));
        assertThrows(IllegalArgumentException.class, () -> GgufValue.ofUInt8(256));
        assertThrows(IllegalArgumentException.class, () -> GgufArray.ofIntegers(GgufValueType.INT8, 128));
        assertThrows(
                UnsupportedOperationException.class,
                () -> w.addTensor("k", GgmlType.Q4_K, new long[] {256}, new float[256]));
        w.putString("k", "v");
        assertThrows(IllegalArgumentException.class, () -> w.putString("k", "again"));
    }
}
