package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;

/**
 * The rows of one (layer, KV head) in device memory as {@code kv_decode_f16}/{@code kv_decode_bf16}
 * read them: {@link #count()} key rows from {@link #keysPointer()} and as many value rows from {@link
 * #valuesPointer()}, each row-major {@code [slot][headDim]}. {@link CudaHeadStore} is one; a staging
 * buffer that a slow-tier head was copied into for its layer's attention is another.
 */
public interface DeviceRows {
    /** The element type of the rows (f16 or bf16). */
    KvDType type();

    /** Rows readable now. */
    int count();

    /** Device address of key row 0 (0 while nothing is allocated). */
    long keysPointer();

    /** Device address of value row 0 (0 while nothing is allocated). */
    long valuesPointer();

    /** Changes whenever {@link #keysPointer()} or {@link #valuesPointer()} change. */
    int version();
}
