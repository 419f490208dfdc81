package io.kvcache4j.eval.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.kvcache4j.TestSeeds;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Valid files from the writer, corrupted at random (truncation, flipped bytes) and deliberately
 * (absurd counts and lengths, bad types, inconsistent offsets): opening fails with a {@link
 * GgufFormatException} naming what is wrong, or succeeds with a structurally sound model whose
 * every tensor can be read; never another exception, an OutOfMemoryError or a hang.
 */
class GgufCorruptionTest {
    @TempDir
    Path dir;

    private byte[] valid;
    private long dataEnd;
    private long dataStart;
    private Map<String, GgufValue> validMeta;
    private List<float[]> validTensors;

    @BeforeEach
    void writeValidFile() throws Exception {
        SplittableRandom r = new SplittableRandom(42);
        GgufWriter w = GgufRoundTripTest.everyValueType()
                .addTensor("a.f32", GgmlType.F32, new long[] {8, 2}, TestSeeds.floats(r, 16, 1))
                .addTensor("b.q8", GgmlType.Q8_0, new long[] {32, 3}, TestSeeds.floats(r, 96, 1))
                .addTensor("c.q4", GgmlType.Q4_0, new long[] {64}, TestSeeds.floats(r, 64, 1))
                .addTensor("d.f16", GgmlType.F16, new long[] {3, 1, 2}, TestSeeds.floats(r, 6, 1));
        valid = w.toByteArray();
        Path p = dir.resolve("valid.gguf");
        Files.write(p, valid);
        try (GgufModel m = GgufModel.open(p)) {
            validMeta = m.metadata();
            dataStart = m.dataSectionOffset();
            validTensors = new ArrayList<>();
            dataEnd = 0;
            for (GgufTensorInfo t : m.tensors()) {
                validTensors.add(m.floats(t.name()));
                dataEnd = Math.max(dataEnd, t.fileOffset() + t.byteSize());
            }
        }
    }

    /** Opens the bytes; returns null when they were rejected with a GgufFormatException. */
    private GgufModel tryOpen(byte[] bytes, String what) throws Exception {
        Path p = dir.resolve("c.gguf");
        Files.write(p, bytes);
        try {
            return GgufModel.open(p);
        } catch (GgufFormatException e) {
            assertTrue(e.getMessage().startsWith(p.toString()), "message names the file: " + e.getMessage());
            return null;
        } catch (Throwable t) {
            throw new AssertionError(what + ": expected GgufFormatException or success, got " + t, t);
        }
    }

    /** A successfully opened model must be self-consistent and fully readable. */
    private static void checkSound(GgufModel m, String what) {
        long prevEnd = -1;
        List<GgufTensorInfo> byOffset = new ArrayList<>(m.tensors());
        byOffset.sort(java.util.Comparator.comparingLong(GgufTensorInfo::fileOffset));
        for (GgufTensorInfo t : byOffset) {
            assertTrue(t.fileOffset() >= m.dataSectionOffset(), what);
            assertTrue(t.fileOffset() + t.byteSize() <= m.fileSize(), what + ": " + t + " past EOF");
            assertEquals(0, t.fileOffset() % m.alignment(), what);
            if (t.byteSize() > 0) {
                assertTrue(t.fileOffset() >= prevEnd, what + ": overlap at " + t);
                prevEnd = t.fileOffset() + t.byteSize();
            }
            try {
                if (t.elementCount() < 1 << 20) {
                    m.floats(t.name());
                }
            } catch (UnsupportedOperationException e) {
                assertTrue(!t.type().hasKernel(), what);
            }
        }
        for (GgufValue v : m.metadata().values()) {
            v.display(4);
        }
    }

    @Test
    void truncationAnywhereIsDetected() {
        long seed = TestSeeds.seed("truncation");
        SplittableRandom r = TestSeeds.random(seed);
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            List<Integer> cuts = new ArrayList<>();
            for (int len = 0; len < Math.min(valid.length, 700); len++) {
                cuts.add(len); // every cut through the header and the first metadata
            }
            for (int i = 0; i < 300; i++) {
                cuts.add(r.nextInt(valid.length));
            }
            for (int len : cuts) {
                byte[] b = java.util.Arrays.copyOf(valid, len);
                String what = "truncated to " + len + " of " + valid.length + " bytes, seed=" + seed;
                GgufModel m = tryOpen(b, what);
                if (len < dataEnd) {
                    if (m != null) {
                        m.close();
                        fail(what + ": accepted although tensor data ends at " + dataEnd);
                    }
                } else if (m == null) {
                    fail(what + ": only trailing padding was cut, file must stay readable");
                } else {
                    try (m) {
                        checkSound(m, what);
                        assertEquals(validMeta, m.metadata(), what);
                        for (int t = 0; t < validTensors.size(); t++) {
                            assertArrayEquals(
                                    validTensors.get(t),
                                    m.floats(m.tensors().get(t).name()),
                                    what);
                        }
                    }
                }
            }
        });
    }

    @Test
    void flippedBytesAreRejectedOrHarmless() {
        long seed = TestSeeds.seed("flipped-bytes");
        SplittableRandom r = TestSeeds.random(seed);
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            int rejected = 0;
            int headerEnd = (int) dataStart;
            for (int i = 0; i < 600; i++) {
                byte[] b = valid.clone();
                int flips = 1 + r.nextInt(3);
                StringBuilder where = new StringBuilder();
                boolean headerTouched = false;
                for (int k = 0; k < flips; k++) {
                    // mostly hit the header, where structure lives
                    int pos = r.nextInt(4) == 0 ? r.nextInt(b.length) : r.nextInt(headerEnd);
                    int mask = 1 + r.nextInt(255);
                    b[pos] ^= (byte) mask;
                    where.append(pos).append("^").append(mask).append(' ');
                    headerTouched |= pos < headerEnd;
                }
                String what = "flipped " + where + "seed=" + seed;
                GgufModel m = tryOpen(b, what);
                if (m == null) {
                    assertTrue(headerTouched, what + ": a change in tensor data alone must not be rejected");
                    rejected++;
                    continue;
                }
                try (m) {
                    checkSound(m, what);
                    if (!headerTouched) {
                        assertEquals(validMeta, m.metadata(), what);
                    }
                }
            }
            assertTrue(rejected > 60, "much header corruption is detected: " + rejected + "/600, seed=" + seed);
        });
    }

    private String rejected(byte[] bytes) throws Exception {
        Path p = dir.resolve("bad.gguf");
        Files.write(p, bytes);
        GgufFormatException e =
                assertThrows(GgufFormatException.class, () -> GgufModel.open(p).close());
        return e.getMessage();
    }

    private static void assertMentions(String message, String... parts) {
        for (String part : parts) {
            assertTrue(message.contains(part), "'" + message + "' should mention '" + part + "'");
        }
    }

    @Test
    void absurdCountsAndLengthsFailBeforeAllocating() throws Exception {
        assertMentions(rejected(RawGguf.header(3, 0, 1L << 62).bytes()), "metadata count", "4611686018427387904");
        assertMentions(
                rejected(RawGguf.header(3, Integer.MAX_VALUE, 0).zeros(64).bytes()), "tensor count", "2147483647");
        assertMentions(rejected(RawGguf.header(3, 0, -1L).bytes()), "metadata count", "18446744073709551615");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1).u64(1L << 60).zeros(20).bytes()),
                "length 1152921504606846976 of key of metadata entry #0",
                "exceeds the");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1)
                        .key("s", GgufValueType.STRING)
                        .u64(1L << 40)
                        .zeros(8)
                        .bytes()),
                "value of metadata key 's'",
                "1099511627776");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1)
                        .key("tokens", GgufValueType.ARRAY)
                        .u32(GgufValueType.STRING.id())
                        .u64(Integer.MAX_VALUE - 9L)
                        .zeros(32)
                        .bytes()),
                "metadata key 'tokens' claims 2147483638 STRING elements",
                "at least 8 per element");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1)
                        .key("f", GgufValueType.ARRAY)
                        .u32(GgufValueType.FLOAT32.id())
                        .u64(1L << 61)
                        .zeros(32)
                        .bytes()),
                "metadata key 'f' claims 2305843009213693952 FLOAT32 elements");
        RawGguf deep = RawGguf.header(3, 0, 1).key("deep", GgufValueType.ARRAY);
        for (int i = 0; i < 100_000; i++) {
            deep.u32(GgufValueType.ARRAY.id()).u64(1);
        }
        assertMentions(rejected(deep.u32(GgufValueType.INT32.id()).u64(0).bytes()), "'deep", "nests arrays", "deep");
        assertMentions(
                rejected(RawGguf.header(3, 1, 0)
                        .tensor("w", GgmlType.F32, 0, 1L << 20, 1L << 20)
                        .bytes()),
                "tensor 'w'",
                "lies past the end of the file");
        assertMentions(
                rejected(RawGguf.header(3, 1, 0)
                        .tensor("w", GgmlType.F32, 0, 1L << 32, 1L << 32, 1L << 32)
                        .bytes()),
                "tensor 'w'",
                "more elements than a long can count");
        assertMentions(
                rejected(RawGguf.header(3, 1, 0).str("w").u32(1000).zeros(64).bytes()),
                "tensor 'w' has 1000 dimensions");
        assertMentions(
                rejected(
                        RawGguf.header(3, 1, 0).tensor("w", GgmlType.F32, 0, -5).bytes()),
                "tensor 'w' has negative ne[0] = -5");
    }

    @Test
    void badTypesAndHeadersAreNamed() throws Exception {
        assertMentions(rejected(new byte[10]), "10 bytes, shorter than the 24-byte GGUF header");
        byte[] magic = RawGguf.header(3, 0, 0).bytes();
        magic[0] = 'X';
        assertMentions(rejected(magic), "bad magic");
        assertMentions(rejected(RawGguf.header(1, 0, 0).bytes()), "version 1 is not supported");
        assertMentions(rejected(RawGguf.header(7, 0, 0).bytes()), "unsupported GGUF version 7");
        assertMentions(rejected(RawGguf.header(0x03000000, 0, 0).bytes()), "big-endian");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1).str("k").u32(13).zeros(8).bytes()), "'k' has unknown value type 13");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1)
                        .key("a", GgufValueType.ARRAY)
                        .u32(99)
                        .u64(0)
                        .bytes()),
                "'a' is an array of unknown element type 99");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1)
                        .key("b", GgufValueType.BOOL)
                        .u8(7)
                        .bytes()),
                "BOOL b",
                "byte value 7; allowed: 0, 1");
        assertMentions(
                rejected(RawGguf.header(3, 0, 2)
                        .key("k", GgufValueType.UINT8)
                        .u8(1)
                        .key("k", GgufValueType.UINT8)
                        .u8(2)
                        .bytes()),
                "duplicate metadata key 'k'");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1)
                        .key("general.alignment", GgufValueType.UINT32)
                        .u32(48)
                        .bytes()),
                "'general.alignment' = 48 is not a power of two");
        assertMentions(
                rejected(RawGguf.header(3, 0, 1)
                        .key("general.alignment", GgufValueType.UINT64)
                        .u64(32)
                        .bytes()),
                "'general.alignment' must be UINT32, is UINT64");
        RawGguf unknownType =
                RawGguf.header(3, 1, 0).str("w").u32(1).u64(32).u32(31).u64(0);
        assertMentions(rejected(unknownType.padTo(32).zeros(64).bytes()), "tensor 'w' has unknown ggml type id 31");
        assertMentions(
                rejected(RawGguf.header(3, 1, 0)
                        .tensor("q", GgmlType.Q8_0, 0, 33)
                        .padTo(32)
                        .zeros(64)
                        .bytes()),
                "tensor 'q' of type Q8_0 has ne[0] = 33, not a multiple of the block size 32");
        assertMentions(
                rejected(RawGguf.header(3, 1, 0)
                        .tensor("m", GgmlType.F32, 4, 2)
                        .padTo(32)
                        .zeros(64)
                        .bytes()),
                "tensor 'm' data offset 4 is not a multiple of the alignment 32");
        assertMentions(
                rejected(RawGguf.header(3, 2, 0)
                        .tensor("first", GgmlType.F32, 0, 16)
                        .tensor("second", GgmlType.F32, 32, 16)
                        .padTo(32)
                        .zeros(128)
                        .bytes()),
                "tensor 'second' at data offset 32 overlaps tensor 'first' which occupies [0, 64)");
        assertMentions(
                rejected(RawGguf.header(3, 1, 0)
                        .tensor("late", GgmlType.F32, 64, 16)
                        .padTo(32)
                        .zeros(100)
                        .bytes()),
                "tensor 'late' data [64, 128)",
                "past the end of the file");
        assertMentions(
                rejected(RawGguf.header(3, 2, 0)
                        .tensor("t", GgmlType.F32, 0, 1)
                        .tensor("t", GgmlType.F32, 32, 1)
                        .padTo(32)
                        .zeros(64)
                        .bytes()),
                "duplicate tensor name 't'");
        assertMentions(
                rejected(RawGguf.header(3, 1, 0)
                        .tensor("n".repeat(64), GgmlType.F32, 0, 1)
                        .bytes()),
                "name at offset 24 is 64 bytes; at most 63 allowed");
    }

    @Test
    void handAssembledFileMatchesTheWriter() throws Exception {
        byte[] raw = RawGguf.header(3, 1, 1)
                .key("general.alignment", GgufValueType.UINT32)
                .u32(32)
                .tensor("w", GgmlType.F32, 0, 2)
                .padTo(32)
                .u32(Float.floatToIntBits(1.5f))
                .u32(Float.floatToIntBits(-2f))
                .padTo(32)
                .bytes();
        byte[] written = new GgufWriter()
                .putUInt32("general.alignment", 32)
                .addTensor("w", GgmlType.F32, new long[] {2}, new float[] {1.5f, -2f})
                .toByteArray();
        assertArrayEquals(raw, written);
    }
}
