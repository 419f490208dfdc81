package io.kvcache4j.store;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Off-heap allocation with explicit, immediate release, and a process-wide count of live bytes.
 *
 * <p>Blocks come from the C library ({@code aligned_alloc}/{@code free}) through the FFM linker, so
 * freeing a page returns its memory at once, which an {@link java.lang.foreign.Arena} per page
 * would only do at a much higher cost. Every block has exactly one owner (a store page); the owner
 * frees it once. The addresses of live blocks are tracked, so freeing a block twice, or a segment
 * this class did not allocate, throws {@link IllegalStateException} instead of corrupting the C
 * heap. {@link #liveBytes()} lets tests check that everything allocated was freed.
 *
 * <p>Thread-safe.
 */
public final class NativeMemory {
    /** Alignment of every block, in bytes: one cache line, and a whole AVX-512 register. */
    public static final long ALIGNMENT = 64;

    private static final MethodHandle ALIGNED_ALLOC;
    private static final MethodHandle FREE;
    private static final AtomicLong LIVE_BYTES = new AtomicLong();
    private static final AtomicLong LIVE_BLOCKS = new AtomicLong();
    private static final ConcurrentHashMap<Long, Long> LIVE = new ConcurrentHashMap<>();

    static {
        Linker linker = Linker.nativeLinker();
        var libc = linker.defaultLookup();
        ALIGNED_ALLOC = linker.downcallHandle(
                libc.find("aligned_alloc").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
        FREE = linker.downcallHandle(libc.find("free").orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));
    }

    private NativeMemory() {}

    /**
     * Allocates {@code bytes} (rounded up to {@link #ALIGNMENT}) of uninitialised memory.
     *
     * @throws OutOfMemoryError if the C library cannot provide the block
     */
    public static MemorySegment allocate(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("allocation size must be >= 1 byte, was " + bytes);
        }
        long size = (bytes + ALIGNMENT - 1) & -ALIGNMENT;
        MemorySegment raw;
        try {
            raw = (MemorySegment) ALIGNED_ALLOC.invokeExact(ALIGNMENT, size);
        } catch (Throwable t) {
            throw new IllegalStateException("aligned_alloc failed", t);
        }
        if (raw.address() == 0) {
            throw new OutOfMemoryError("off-heap allocation of " + size + " bytes failed");
        }
        LIVE.put(raw.address(), size);
        LIVE_BYTES.addAndGet(size);
        LIVE_BLOCKS.incrementAndGet();
        return raw.reinterpret(size);
    }

    /**
     * Frees a block returned by {@link #allocate(long)}; the segment must not be used afterwards.
     *
     * @throws IllegalStateException if the block is not live (freed already, or not from this class),
     *     or its size is not the allocated size; nothing is freed then
     */
    public static void free(MemorySegment block) {
        Long size = LIVE.remove(block.address());
        if (size == null) {
            throw new IllegalStateException("block at 0x" + Long.toHexString(block.address())
                    + " is not a live block of NativeMemory (freed twice, or never allocated here)");
        }
        if (size != block.byteSize()) {
            LIVE.put(block.address(), size);
            throw new IllegalStateException("block at 0x" + Long.toHexString(block.address()) + " has " + size
                    + " bytes, but the segment passed to free has " + block.byteSize());
        }
        try {
            FREE.invokeExact(block);
        } catch (Throwable t) {
            throw new IllegalStateException("free failed", t);
        }
        LIVE_BYTES.addAndGet(-block.byteSize());
        LIVE_BLOCKS.decrementAndGet();
    }

    /** Bytes currently allocated through this class, process-wide. */
    public static long liveBytes() {
        return LIVE_BYTES.get();
    }

    /** Blocks currently allocated through this class, process-wide. */
    public static long liveBlocks() {
        return LIVE_BLOCKS.get();
    }
}
