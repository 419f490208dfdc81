package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The value layout the kernels read: where each element lies, and the row helpers that write, read and move rows. */
class ValueChunksTest {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int[] HEAD_DIMS = {1, 13, 16, 31, 32, 33, 48, 80, 128, 256};
    private static final int[] ROWS = {16, 32, 48};

    @Test
    void elementsTileTheRegionBlockByBlockChunkByChunkWithEachChunksRowsInAddressOrder() {
        int block = GroupAttention.BLOCK;
        for (int d : HEAD_DIMS) {
            for (int rows : ROWS) {
                assertEquals((long) rows * d, ValueChunks.regionElements(d, rows));
                long expected = 0;
                for (int b = 0; b < rows; b += block) {
                    for (int c0 = 0; c0 < d; c0 += ValueChunks.WIDTH) {
                        int w = Math.min(ValueChunks.WIDTH, d - c0);
                        for (int row = b; row < b + block; row++) {
                            for (int i = c0; i < c0 + w; i++) {
                                // address order: block after block, in a block chunk after chunk, in a
                                // chunk row after row, in a row dimension after dimension
                                assertEquals(
                                        expected++,
                                        ValueChunks.element(d, row, i),
                                        "d " + d + " row " + row + " dim " + i);
                                assertEquals(w, ValueChunks.width(d, i));
                            }
                        }
                    }
                }
                assertEquals((long) rows * d, expected, "every element of the region used once");
            }
            if (d <= ValueChunks.WIDTH) {
                assertEquals(
                        (long) 21 * d + (3 % d), ValueChunks.element(d, 21, 3 % d), "one chunk is token-major rows");
            }
        }
        assertEquals(32L, ValueChunks.regionElements(1, 17), "a region holds whole blocks");
    }

    @Test
    void encodeDecodeAndCopyPlaceEachRowWhereElementSays() {
        for (ConversionSupport conversion :
                new ConversionSupport[] {ScalarAttentionKernel.INSTANCE, kernelConversion()}) {
            for (int d : HEAD_DIMS) {
                for (int rows : ROWS) {
                    long base = 24;
                    MemorySegment region = MemorySegment.ofArray(new byte[(int) (base + 4L * rows * d + 8)]);
                    float[] row = new float[d];
                    for (int r = 0; r < rows; r++) {
                        for (int i = 0; i < d; i++) {
                            row[i] = value(r, i);
                        }
                        ValueChunks.encode(conversion, row, 0, region, base, KvDType.F32, d, r);
                    }
                    for (int r = 0; r < rows; r++) {
                        for (int i = 0; i < d; i++) {
                            assertEquals(
                                    value(r, i),
                                    region.get(F32, base + 4 * ValueChunks.element(d, r, i)),
                                    "d " + d + " rows " + rows + " row " + r + " dim " + i);
                        }
                        float[] back = new float[d + 3];
                        ValueChunks.decode(conversion, region, base, KvDType.F32, d, r, back, 2);
                        for (int i = 0; i < d; i++) {
                            assertEquals(value(r, i), back[2 + i]);
                        }
                    }
                    // into a one-block region (a gather page) and back into another row
                    int block = GroupAttention.BLOCK;
                    MemorySegment gather = MemorySegment.ofArray(new byte[(int) (4L * block * d)]);
                    ValueChunks.copy(region, base, rows - 1, gather, 0, 7, d, 4);
                    ValueChunks.copy(gather, 0, 7, region, base, 0, d, 4);
                    for (int i = 0; i < d; i++) {
                        assertEquals(value(rows - 1, i), gather.get(F32, 4 * ValueChunks.element(d, 7, i)));
                        assertEquals(value(rows - 1, i), region.get(F32, base + 4 * ValueChunks.element(d, 0, i)));
                        assertEquals(value(1, i), region.get(F32, base + 4 * ValueChunks.element(d, 1, i)));
                    }
                    // rows across two blocks into one block, as a scan that starts inside a block reads them
                    for (int first : new int[] {1, 9, 15, rows - 16}) {
                        for (int nb : new int[] {1, 7, 16}) {
                            if (first + nb > rows) {
                                continue;
                            }
                            ValueChunks.copyBlock(region, base, first, nb, gather, d, 4);
                            for (int j = 0; j < nb; j++) {
                                for (int i = 0; i < d; i++) {
                                    assertEquals(
                                            first + j == 0 ? value(rows - 1, i) : value(first + j, i),
                                            gather.get(F32, 4 * ValueChunks.element(d, j, i)),
                                            "rows from " + first + ", row " + j + " dim " + i + ", d " + d);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * A scan that starts inside a stored block (its values copied through the state's scratch block)
     * gives the bits of the same rows stored from a block's start, for every type and kernel path.
     */
    @Test
    void scanFromInsideABlockMatchesTheSameRowsStoredAligned() {
        long seed = TestSeeds.seed("ValueChunksTest.scanFromInsideABlock");
        SplittableRandom r = TestSeeds.random(seed);
        int pageRows = 64;
        for (AttentionKernel kernel : new AttentionKernel[] {ScalarAttentionKernel.INSTANCE, AttentionKernels.get()}) {
            for (KvDType type : new KvDType[] {KvDType.F16, KvDType.F32, KvDType.BF16}) {
                for (int group : new int[] {1, 2, 4, 8}) {
                    for (int d : new int[] {16, 48, 128}) {
                        int e = type.bytes();
                        long values = (long) d * pageRows * e;
                        MemorySegment a = MemorySegment.ofArray(new byte[(int) (2 * values)]);
                        MemorySegment b = MemorySegment.ofArray(new byte[(int) (2 * values)]);
                        int o = 1 + r.nextInt(15);
                        float[] row = new float[d];
                        for (int j = 0; j < pageRows; j++) {
                            float[] key = TestSeeds.floats(r, d, 2f);
                            System.arraycopy(TestSeeds.floats(r, d, 2f), 0, row, 0, d);
                            ScalarAttentionKernel.INSTANCE.encodeStrided(
                                    key, 0, a, (long) j * e, (long) pageRows * e, type, d);
                            ValueChunks.encode(ScalarAttentionKernel.INSTANCE, row, 0, a, values, type, d, j);
                            if (j >= o) {
                                ScalarAttentionKernel.INSTANCE.encodeStrided(
                                        key, 0, b, (long) (j - o) * e, (long) pageRows * e, type, d);
                                ValueChunks.encode(ScalarAttentionKernel.INSTANCE, row, 0, b, values, type, d, j - o);
                            }
                        }
                        float[] q = TestSeeds.floats(r, group * d, 2f);
                        int rows = 1 + r.nextInt(pageRows - o);
                        float[] shifted = pass(kernel, a, values, pageRows, type, group, d, q, o, rows);
                        float[] aligned = pass(kernel, b, values, pageRows, type, group, d, q, 0, rows);
                        for (int i = 0; i < aligned.length; i++) {
                            assertEquals(
                                    Float.floatToRawIntBits(aligned[i]),
                                    Float.floatToRawIntBits(shifted[i]),
                                    kernel.name() + " " + type + " group " + group + " d " + d + " rows [" + o + ", "
                                            + (o + rows) + "): float " + i + ", seed=" + seed);
                        }
                    }
                }
            }
        }
    }

    private static float[] pass(
            AttentionKernel kernel,
            MemorySegment page,
            long values,
            int pageRows,
            KvDType type,
            int group,
            int d,
            float[] q,
            int row,
            int rows) {
        GroupAttention st = new GroupAttention(group, d, kernel);
        st.begin(q, 0, (float) (1 / Math.sqrt(d)));
        kernel.scan(st, page, 0, pageRows, values, type, row, rows, 0);
        float[] out = new float[group * d + group];
        st.finish(out, 0);
        for (int h = 0; h < group; h++) {
            out[group * d + h] = st.lse(h);
        }
        return out;
    }

    @Test
    void scanAndValueStepRefuseRowsOutsideThePage() {
        for (AttentionKernel kernel : new AttentionKernel[] {ScalarAttentionKernel.INSTANCE, AttentionKernels.get()}) {
            int d = 32;
            GroupAttention st = new GroupAttention(1, d, kernel);
            st.begin(new float[d], 0, 1f);
            MemorySegment page = MemorySegment.ofArray(new byte[2 * 2 * 16 * d]);
            long values = 2L * 16 * d;
            var tooMany = assertThrows(
                    IllegalArgumentException.class,
                    () -> kernel.scan(st, page, 0, 16, values, KvDType.F16, 8, 9, 0),
                    kernel.name());
            assertEquals("rows [8, 17) out of range for a page of 16 rows", tooMany.getMessage());
            assertThrows(
                    IllegalArgumentException.class, () -> kernel.scan(st, page, 0, 16, values, KvDType.F16, -1, 1, 0));
            st.pushLogits(new float[GroupAttention.BLOCK], 4, 0);
            var past = assertThrows(
                    IllegalArgumentException.class,
                    () -> kernel.accumulateValues(st, page, values, -2, KvDType.F16, 4),
                    kernel.name());
            assertEquals("row must be >= 0, was -2", past.getMessage());
        }
    }

    @Test
    void rowHelpersRefuseNegativeRowsAndEmptyHeads() {
        MemorySegment region = MemorySegment.ofArray(new byte[4 * 16 * 32]);
        float[] row = new float[32];
        var negative = assertThrows(
                IllegalArgumentException.class,
                () -> ValueChunks.encode(ScalarAttentionKernel.INSTANCE, row, 0, region, 0, KvDType.F32, 32, -1));
        assertEquals("row must be >= 0, was -1", negative.getMessage());
        var empty = assertThrows(
                IllegalArgumentException.class,
                () -> ValueChunks.decode(ScalarAttentionKernel.INSTANCE, region, 0, KvDType.F32, 0, 3, row, 0));
        assertEquals("headDim must be >= 1, was 0", empty.getMessage());
        var copy = assertThrows(
                IllegalArgumentException.class, () -> ValueChunks.copy(region, 0, 2, region, 0, -5, 32, 4));
        assertEquals("row must be >= 0, was -5", copy.getMessage());
        assertThrows(
                IndexOutOfBoundsException.class,
                () -> ValueChunks.encode(ScalarAttentionKernel.INSTANCE, row, 0, region, 0, KvDType.F32, 32, 16),
                "a row past the region's end is refused by the segment");
    }

    private static ConversionSupport kernelConversion() {
        return (ConversionSupport) AttentionKernels.get();
    }

    private static float value(int row, int dim) {
        return row * 1000f + dim + 0.25f;
    }
}
