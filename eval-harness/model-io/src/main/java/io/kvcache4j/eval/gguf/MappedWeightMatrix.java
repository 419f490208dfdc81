package io.kvcache4j.eval.gguf;

import java.lang.foreign.MemorySegment;

/**
 * {@link WeightMatrix} over rows stored back to back in a segment (normally a model's mapping),
 * computing with the process's {@link WeightKernels} choice or a given kernel.
 */
final class MappedWeightMatrix implements WeightMatrix {
    /** Below this many multiply-adds a product runs on the calling thread. */
    static final long PARALLEL_THRESHOLD = 1L << 18;

    /**
     * Weight rows per pass of a matmul: the kernel widens this many rows once and runs every token
     * against them, so the tokens' inputs are read from memory once per block instead of once per
     * row (16 rows of 4,096 f32 columns are 256 KiB, within a core's L2).
     */
    static final int ROW_BLOCK = 16;
    /** Each thread's widening scratch for {@link #matmul}; see {@link #scratch}. */
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private final String name;
    private final GgmlType type;
    private final int rows;
    private final int cols;
    private final MemorySegment segment;
    private final long offset;
    private final long rowBytes;
    private final WeightKernel kernel;

    MappedWeightMatrix(
            String name, GgmlType type, int rows, int cols, MemorySegment segment, long offset, long rowBytes) {
        this(name, type, rows, cols, segment, offset, rowBytes, WeightKernels.get());
    }

    MappedWeightMatrix(
            String name,
            GgmlType type,
            int rows,
            int cols,
            MemorySegment segment,
            long offset,
            long rowBytes,
            WeightKernel kernel) {
        if (!type.hasKernel()) {
            throw new UnsupportedOperationException("tensor '" + name + "': no kernel for " + type);
        }
        if (rows < 0 || cols < 0 || cols % type.blockSize() != 0) {
            throw new IllegalArgumentException("tensor '" + name + "': " + rows + " rows of " + cols + " " + type
                    + " elements; cols must be a non-negative multiple of " + type.blockSize());
        }
        if (rowBytes != type.bytesFor(cols) || offset < 0 || offset + rows * rowBytes > segment.byteSize()) {
            throw new IllegalArgumentException("tensor '" + name + "': " + rows + " rows of " + rowBytes
                    + " bytes at offset " + offset + " do not fit a segment of " + segment.byteSize() + " bytes");
        }
        this.name = name;
        this.type = type;
        this.rows = rows;
        this.cols = cols;
        this.segment = segment;
        this.offset = offset;
        this.rowBytes = rowBytes;
        this.kernel = kernel;
    }

    /** The same matrix computing with another kernel (tests compare the twins). */
    MappedWeightMatrix withKernel(WeightKernel k) {
        return new MappedWeightMatrix(name, type, rows, cols, segment, offset, rowBytes, k);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public GgmlType type() {
        return type;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    @Override
    public float dotRow(int row, float[] x, int xOff) {
        checkRow(row);
        checkVector("x", x, xOff, cols);
        return kernel.dot(type, segment, offset + row * rowBytes, x, xOff, cols);
    }

    @Override
    public void rowToFloats(int row, float[] dst, int dstOff) {
        checkRow(row);
        checkVector("dst", dst, dstOff, cols);
        GgmlQuants.dequantize(type, segment, offset + row * rowBytes, dst, dstOff, cols);
    }

    @Override
    public void matvec(float[] x, int xOff, float[] y, int yOff) {
        checkVector("x", x, xOff, cols);
        checkVector("y", y, yOff, rows);
        int items = items(1);
        if (items <= 1) {
            matvecRows(x, xOff, y, yOff, 0, rows);
        } else {
            RowPool.shared().run(this, true, x, xOff, y, yOff, 1, items, perItem());
        }
    }

    /** {@link #matvec}'s rows {@code [r0, r1)}. */
    void matvecRows(float[] x, int xOff, float[] y, int yOff, int r0, int r1) {
        long at = offset + r0 * rowBytes;
        for (int r = r0; r < r1; r++, at += rowBytes) {
            y[yOff + r] = kernel.dot(type, segment, at, x, xOff, cols);
        }
    }

    @Override
    public void matmul(float[] x, float[] y, int tokens) {
        if (tokens < 0) {
            throw new IllegalArgumentException("tokens " + tokens + " must be >= 0");
        }
        checkVector("x", x, 0, (long) tokens * cols);
        checkVector("y", y, 0, (long) tokens * rows);
        int items = items(tokens);
        if (items <= 1) {
            matmulRows(x, y, tokens, 0, rows);
        } else {
            RowPool.shared().run(this, false, x, 0, y, 0, tokens, items, perItem());
        }
    }

    /** {@link #matmul}'s rows {@code [r0, r1)}, on the calling thread. */
    void matmulRows(float[] x, float[] y, int tokens, int r0, int r1) {
        int block = Math.min(ROW_BLOCK, r1 - r0);
        float[] scratch = scratch(block * cols);
        for (int r = r0; r < r1; r += block) {
            int nr = Math.min(block, r1 - r);
            kernel.dotRowsTokens(
                    type, segment, offset + r * rowBytes, rowBytes, nr, x, tokens, cols, y, r, rows, scratch);
        }
    }

    /**
     * This thread's widening scratch, grown to {@code floats}: a matmul's row range runs on one thread
     * from start to end and nothing it calls takes the scratch, so one array per thread serves every
     * matrix, and a decode step allocates nothing.
     */
    private static float[] scratch(int floats) {
        float[] s = SCRATCH.get();
        if (s.length < floats) {
            s = new float[floats];
            SCRATCH.set(s);
        }
        return s;
    }

    /**
     * Row ranges a product of {@code tokens} inputs splits into: 1 (the calling thread alone) below
     * {@link #PARALLEL_THRESHOLD} multiply-adds, with one thread, or with fewer than 2 rows; else
     * about four per {@link RowPool#THREADS thread}, so that uneven ranges even out.
     */
    private int items(int tokens) {
        long work = (long) rows * cols * Math.max(1, tokens);
        int threads = RowPool.THREADS;
        if (work < PARALLEL_THRESHOLD || threads <= 1 || rows < 2) {
            return 1;
        }
        int per = perItem();
        return (rows + per - 1) / per;
    }

    /** Rows per range of a split product: about four ranges per thread. */
    private int perItem() {
        int chunks = (int) Math.min(rows, RowPool.THREADS * 4L);
        return (rows + chunks - 1) / chunks;
    }

    private void checkRow(int row) {
        if (row < 0 || row >= rows) {
            throw new IndexOutOfBoundsException(
                    "row " + row + " out of range [0, " + rows + ") of tensor '" + name + "'");
        }
    }

    private void checkVector(String what, float[] a, int off, long len) {
        if (off < 0 || off > a.length || a.length - off < len) {
            throw new IllegalArgumentException(what + " needs " + len + " floats from offset " + off
                    + " but has length " + a.length + " (tensor '" + name + "', " + rows + " x " + cols + ")");
        }
    }

    @Override
    public String toString() {
        return "WeightMatrix[" + name + " " + type + " " + rows + " x " + cols + ", " + kernel.name() + "]";
    }
}
