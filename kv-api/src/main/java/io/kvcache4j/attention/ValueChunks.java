package io.kvcache4j.attention;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import java.lang.foreign.MemorySegment;

/**
 * The layout of stored value rows that {@link AttentionKernel#scan} and {@link
 * AttentionKernel#accumulateValues} read. Rows are grouped in blocks of {@link GroupAttention#BLOCK}
 * (16), the rows one online-softmax step weighs; a block occupies {@code 16·headDim} consecutive
 * elements, cut into column chunks of {@link #WIDTH} elements (the last one narrower when {@code
 * headDim} is not a multiple of it), and each chunk holds its slice of the block's 16 rows, row after
 * row. Element {@code i} of row {@code r} is at element {@code ⌊r/16⌋·16·headDim + c·16 + (r mod
 * 16)·w + (i − c)} of the region, with {@code c} the chunk's first element ({@code i} rounded down
 * to a multiple of {@code WIDTH}) and {@code w = min(WIDTH, headDim − c)} its width. A region holds a
 * whole number of blocks; a head of at most {@code WIDTH} elements is plain token-major rows.
 *
 * <p>Why not token-major rows: the value step adds {@code p_j·v_j} over a block's rows one column
 * chunk at a time (that many accumulators fit in registers, and each weight broadcast feeds every
 * head's chunk), so over token-major rows it reads a 64-byte piece of every row, 256 bytes apart for
 * f16 at {@code headDim} 128, four times over the block. Over this layout the same reads walk the
 * block's bytes in address order, one stream the hardware prefetcher follows on from the keys; on
 * the development machine the same kernel over a 1M-token f16 head took 0.77× the time reading in
 * this order (the README's benchmarks section has the measurements).
 */
public final class ValueChunks {
    /** Elements per column chunk: 64 bytes of an f16 or bf16 row, two 16-lane vectors. */
    public static final int WIDTH = 32;

    private static final int BLOCK = GroupAttention.BLOCK;

    private ValueChunks() {}

    /** The width of the chunk that holds element {@code dim} of a {@code headDim}-element row. */
    public static int width(int headDim, int dim) {
        return Math.min(WIDTH, headDim - (dim & -WIDTH));
    }

    /** Element index, from the region's start, of element {@code dim} of row {@code row}. */
    public static long element(int headDim, int row, int dim) {
        int c0 = dim & -WIDTH;
        return (long) (row & -BLOCK) * headDim
                + c0 * BLOCK
                + (row & (BLOCK - 1)) * Math.min(WIDTH, headDim - c0)
                + (dim - c0);
    }

    /** Elements a region of {@code rows} rows occupies: whole blocks of {@code BLOCK} rows. */
    public static long regionElements(int headDim, int rows) {
        return (long) ((rows + BLOCK - 1) / BLOCK) * BLOCK * headDim;
    }

    /**
     * Writes {@code headDim} floats from {@code src[srcOff ..]} as row {@code row} of the region at
     * {@code dst + base}, converted to {@code type}.
     */
    public static void encode(
            ConversionSupport conversion,
            float[] src,
            int srcOff,
            MemorySegment dst,
            long base,
            KvDType type,
            int headDim,
            int row) {
        checkRow(headDim, row);
        int e = type.bytes();
        for (int c0 = 0; c0 < headDim; c0 += WIDTH) {
            conversion.encode(
                    src, srcOff + c0, dst, base + element(headDim, row, c0) * e, type, Math.min(WIDTH, headDim - c0));
        }
    }

    /** Reads row {@code row} of the region at {@code src + base} into {@code dst[dstOff ..]}. */
    public static void decode(
            ConversionSupport conversion,
            MemorySegment src,
            long base,
            KvDType type,
            int headDim,
            int row,
            float[] dst,
            int dstOff) {
        checkRow(headDim, row);
        int e = type.bytes();
        for (int c0 = 0; c0 < headDim; c0 += WIDTH) {
            conversion.decode(
                    src, base + element(headDim, row, c0) * e, type, dst, dstOff + c0, Math.min(WIDTH, headDim - c0));
        }
    }

    /**
     * Copies row {@code srcRow} of the region at {@code src + srcBase} to row {@code dstRow} of the
     * region at {@code dst + dstBase}, {@code bytes} per element.
     */
    public static void copy(
            MemorySegment src,
            long srcBase,
            int srcRow,
            MemorySegment dst,
            long dstBase,
            int dstRow,
            int headDim,
            int bytes) {
        checkRow(headDim, srcRow);
        checkRow(headDim, dstRow);
        for (int c0 = 0; c0 < headDim; c0 += WIDTH) {
            MemorySegment.copy(
                    src,
                    srcBase + element(headDim, srcRow, c0) * bytes,
                    dst,
                    dstBase + element(headDim, dstRow, c0) * bytes,
                    (long) Math.min(WIDTH, headDim - c0) * bytes);
        }
    }

    /**
     * @throws IllegalArgumentException if {@code headDim < 1} or {@code row < 0} (the segment access
     *     itself refuses rows past the region's end)
     */
    private static void checkRow(int headDim, int row) {
        if (headDim < 1) {
            throw new IllegalArgumentException("headDim must be >= 1, was " + headDim);
        }
        if (row < 0) {
            throw new IllegalArgumentException("row must be >= 0, was " + row);
        }
    }

    /**
     * Copies rows {@code [row, row + nb)} of the region at {@code src + base} ({@code nb <= BLOCK},
     * possibly across two blocks) into the block at {@code dst + 0}, as its rows {@code [0, nb)}:
     * chunk by chunk, at most two runs each.
     */
    static void copyBlock(MemorySegment src, long base, int row, int nb, MemorySegment dst, int headDim, int bytes) {
        int o = row & (BLOCK - 1);
        int k = Math.min(nb, BLOCK - o);
        long blockA = base + (long) (row & -BLOCK) * headDim * bytes;
        long blockB = blockA + (long) BLOCK * headDim * bytes;
        for (int c0 = 0; c0 < headDim; c0 += WIDTH) {
            int w = Math.min(WIDTH, headDim - c0);
            long chunk = (long) c0 * BLOCK * bytes;
            MemorySegment.copy(src, blockA + chunk + (long) o * w * bytes, dst, chunk, (long) k * w * bytes);
            if (nb > k) {
                MemorySegment.copy(src, blockB + chunk, dst, chunk + (long) k * w * bytes, (long) (nb - k) * w * bytes);
            }
        }
    }
}
