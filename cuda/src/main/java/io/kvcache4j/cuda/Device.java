package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import java.lang.foreign.MemorySegment;

/**
 * One accelerator as the CUDA stores and layer attention see it: device memory addressed by 64-bit
 * pointers, pinned host staging buffers, copies and kernel launches queued in order on one launch
 * stream, host-to-device transfers on a second stream ordered against it by {@link Event}s, and the
 * kernels of {@code kv_attention.cu}. {@link JCudaDevice} implements it on the CUDA driver
 * API; {@link EmulatedDevice} in host memory with {@link KernelEmulator}, so the whole Java side runs
 * and is tested without a GPU.
 *
 * <p>Copies and launches are asynchronous: host staging memory handed to a copy must stay untouched
 * until {@link #synchronize()} returns.
 *
 * <p>Thread-safe: several caches may share one device from their own threads (the NIAH harness runs
 * one cache per core). Calls are serialized and queue on the one stream in the order they are made;
 * each caller's buffers are its own, and since {@link #synchronize()} waits for everything queued
 * (other threads' work included), a caller that synchronizes before touching its staging memory again
 * is never raced.
 */
public interface Device extends AutoCloseable {

    /** Pinned (page-locked) host memory usable by asynchronous copies. */
    interface HostBuffer {
        /** The buffer's bytes, little-endian. */
        MemorySegment segment();
    }

    /** A short description, e.g. the GPU's name and compute capability. */
    String name();

    /** Allocates {@code bytes} of device memory (256-byte aligned). */
    long malloc(long bytes);

    /** Frees an allocation of {@link #malloc}, after the work queued on both streams completed. */
    void free(long ptr);

    /** Device bytes allocated now and not freed. */
    long bytesAllocated();

    /** Allocates pinned host memory. */
    HostBuffer allocHost(long bytes);

    /**
     * Frees pinned host memory, after the work queued on both streams completed.
     *
     * @throws IllegalArgumentException if {@code buffer} is not a live buffer of this device (freed
     *     already, or another device's)
     */
    void freeHost(HostBuffer buffer);

    /** Pinned host bytes allocated now and not freed. */
    long hostBytesAllocated();

    /** Queues a copy of {@code bytes} from {@code src[srcOffset..]} to device address {@code dst}. */
    void copyToDevice(long dst, HostBuffer src, long srcOffset, long bytes);

    /** Queues a copy of {@code bytes} from device address {@code src} to {@code dst[dstOffset..]}. */
    void copyToHost(HostBuffer dst, long dstOffset, long src, long bytes);

    /** Queues a device-to-device copy. */
    void copyOnDevice(long dst, long src, long bytes);

    /**
     * Waits until everything queued on the launch stream (copies of the methods above and launches)
     * has completed. Work on the transfer stream completes through its {@link Event}s.
     */
    void synchronize();

    /**
     * A marker on the transfer stream (a CUDA event), reusable: each {@link #recordTransfer} moves it
     * to the end of what the transfer stream holds then.
     */
    interface Event {}

    /** Creates an event, complete until first recorded. */
    Event newEvent();

    /** Destroys an event of {@link #newEvent} (after waiting for it). */
    void freeEvent(Event event);

    /**
     * Queues a copy of {@code bytes} from pinned {@code src[srcOffset..]} to device address {@code dst} on
     * the transfer stream, a second stream that runs concurrently with the launch stream: neither the
     * launch stream nor {@link #synchronize()} waits for it; {@link #awaitOnStream} and {@link
     * #awaitOnHost} on an event recorded after it do. The source must stay untouched, and the
     * destination unread, until then.
     */
    void transferToDevice(long dst, HostBuffer src, long srcOffset, long bytes);

    /** Records {@code event} on the transfer stream, after every transfer queued so far. */
    void recordTransfer(Event event);

    /** Makes every later copy and launch on the launch stream wait until {@code event} completed. */
    void awaitOnStream(Event event);

    /** Blocks the caller until {@code event} completed. */
    void awaitOnHost(Event event);

    /** Queues {@code kv_decode_f16} or {@code kv_decode_bf16}; see {@link KernelEmulator#decodeExact}. */
    void decodeExact(
            KvDType type,
            long kvPointers,
            int kvHeads,
            long queries,
            long visible,
            long partOut,
            long partLse,
            int tokens,
            int group,
            int headDim,
            int chunk,
            int maxChunks,
            float scale);

    /** Queues {@code kv_decode_int4}; see {@link KernelEmulator#decodeInt4}. */
    void decodeInt4(
            long groupPointers,
            int kvHeads,
            KiviLayout layout,
            long queries,
            long visible,
            long partOut,
            long partLse,
            int tokens,
            int group,
            int chunk,
            int maxChunks,
            float scale);

    /** Queues {@code kv_combine} ({@code extraOut == 0}) or {@code kv_combine_hybrid}. */
    void combine(
            long partOut,
            long partLse,
            long extraOut,
            long extraLse,
            long out,
            long lse,
            int rows,
            int maxChunks,
            int D);

    /** Queues {@code kv_append_f16} or {@code kv_append_bf16}. */
    void append(KvDType type, long src, int tokens, int headDim, long keys, long values, int row0);

    /** Queues {@code kv_gather_rows}. */
    void gather(long src, long dst, long sources, int moved, int elems);

    /** Releases the device's resources. */
    @Override
    void close();
}
