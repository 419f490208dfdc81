package io.kvcache4j.eval.gguf;

/**
 * The ggml tensor element types a GGUF file can name, with ggml's ids and block geometry: a row of
 * {@code ne0} elements occupies {@code ne0 / blockSize * blockBytes} bytes and {@code ne0} must be a
 * multiple of {@link #blockSize()}. Only the types with {@link #hasKernel()} can be read as weights
 * or floats; the others are listed so that any ggml model file can be opened and inspected.
 */
public enum GgmlType {
    F32(0, 1, 4, true),
    F16(1, 1, 2, true),
    /** 32 elements: fp16 scale d, 16 bytes of 4-bit codes q (low nibbles first); x = d·(q − 8). */
    Q4_0(2, 32, 18, true),
    Q4_1(3, 32, 20, false),
    Q5_0(6, 32, 22, false),
    Q5_1(7, 32, 24, false),
    /** 32 elements: fp16 scale d, 32 int8 codes q; x = d·q. */
    Q8_0(8, 32, 34, true),
    Q8_1(9, 32, 36, false),
    Q2_K(10, 256, 84, false),
    Q3_K(11, 256, 110, false),
    /**
     * 256 elements: fp16 d, fp16 dmin, 12 bytes of packed 6-bit sub-block scales and mins, 128 bytes of
     * 4-bit codes; eight sub-blocks of 32 with x = d·sc·q − dmin·m.
     */
    Q4_K(12, 256, 144, true),
    Q5_K(13, 256, 176, false),
    /**
     * 256 elements: 128 bytes low 4 bits, 64 bytes high 2 bits, 16 int8 sub-block scales, fp16 d;
     * sixteen sub-blocks of 16 with x = d·sc·(q − 32).
     */
    Q6_K(14, 256, 210, true),
    Q8_K(15, 256, 292, false),
    IQ2_XXS(16, 256, 66, false),
    IQ2_XS(17, 256, 74, false),
    IQ3_XXS(18, 256, 98, false),
    IQ1_S(19, 256, 50, false),
    IQ4_NL(20, 32, 18, false),
    IQ3_S(21, 256, 110, false),
    IQ2_S(22, 256, 82, false),
    IQ4_XS(23, 256, 136, false),
    I8(24, 1, 1, false),
    I16(25, 1, 2, false),
    I32(26, 1, 4, false),
    I64(27, 1, 8, false),
    F64(28, 1, 8, false),
    IQ1_M(29, 256, 56, false),
    BF16(30, 1, 2, true),
    TQ1_0(34, 256, 54, false),
    TQ2_0(35, 256, 66, false),
    MXFP4(39, 32, 17, false);

    private static final GgmlType[] BY_ID = new GgmlType[64];

    static {
        for (GgmlType t : values()) {
            BY_ID[t.id] = t;
        }
    }

    private final int id;
    private final int blockSize;
    private final int blockBytes;
    private final boolean hasKernel;

    GgmlType(int id, int blockSize, int blockBytes, boolean hasKernel) {
        this.id = id;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
        this.hasKernel = hasKernel;
    }

    /** ggml's id for the type, as written in the tensor info. */
    public int id() {
        return id;
    }

    /** Elements per block (1 for plain types). */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes per block. */
    public int blockBytes() {
        return blockBytes;
    }

    /** Whether this library can compute with tensors of this type. */
    public boolean hasKernel() {
        return hasKernel;
    }

    /**
     * Bytes that {@code elements} consecutive elements occupy.
     *
     * @throws IllegalArgumentException if {@code elements} is negative or not a multiple of the block size
     * @throws ArithmeticException if the size overflows a long
     */
    public long bytesFor(long elements) {
        if (elements < 0 || elements % blockSize != 0) {
            throw new IllegalArgumentException(name() + ": " + elements
                    + " elements is not a non-negative multiple of the block size " + blockSize);
        }
        return Math.multiplyExact(elements / blockSize, (long) blockBytes);
    }

    /** The type with this id, or {@code null} when ggml has no such type (or it was removed). */
    public static GgmlType fromId(long id) {
        return id >= 0 && id < BY_ID.length ? BY_ID[(int) id] : null;
    }
}
