package io.kvcache4j.eval.gguf;

import java.util.Arrays;

/**
 * Where and how one tensor is stored in a GGUF file.
 *
 * @param name the tensor's name
 * @param type its element type
 * @param ne the shape in ggml order: {@code ne[0]} is the number of elements of one row (the
 *     fastest-varying dimension, the "in features" of a weight matrix), {@code ne[1]} the number of
 *     rows, and so on; {@link #ne()} returns a copy
 * @param dataOffset offset of the first byte relative to the start of the file's data section, as
 *     written in the file
 * @param fileOffset offset of the first byte from the start of the file
 * @param byteSize bytes the tensor occupies
 */
public record GgufTensorInfo(String name, GgmlType type, long[] ne, long dataOffset, long fileOffset, long byteSize) {

    public GgufTensorInfo {
        ne = ne.clone();
    }

    @Override
    public long[] ne() {
        return ne.clone();
    }

    /** Number of dimensions as written in the file. */
    public int nDims() {
        return ne.length;
    }

    /** {@code ne[i]}, or 1 for {@code i >= nDims()} (ggml's convention). */
    public long ne(int i) {
        return i < ne.length ? ne[i] : 1;
    }

    /** Total number of elements. */
    public long elementCount() {
        long n = 1;
        for (long d : ne) {
            n *= d; // checked for overflow when the file was read
        }
        return n;
    }

    /** Elements per row: {@code ne[0]}. */
    public long rowLength() {
        return ne(0);
    }

    /** Number of rows: the product of {@code ne[1..]}. */
    public long rowCount() {
        long n = 1;
        for (int i = 1; i < ne.length; i++) {
            n *= ne[i];
        }
        return n;
    }

    /** e.g. {@code blk.0.attn_q.weight Q8_0 [4096, 4096]}. */
    @Override
    public String toString() {
        return name + " " + type + " " + Arrays.toString(ne);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufTensorInfo t
                && t.name.equals(name)
                && t.type == type
                && Arrays.equals(t.ne, ne)
                && t.dataOffset == dataOffset
                && t.fileOffset == fileOffset
                && t.byteSize == byteSize;
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(ne);
    }
}
