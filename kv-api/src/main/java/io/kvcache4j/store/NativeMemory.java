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
 * <p><b>Regions.</b> On Linux a store can also {@link #reserve} a range of address space
 * ({@code mmap}, no memory behind it yet) and {@link #commit} and {@link #decommit} pages of it
 * one at a time, so that its pages lie at consecutive addresses however the allocations of
 * several stores interleave (the hardware prefetcher follows one run of pages better than pages
 * scattered among other stores'). The kernel backs a committed page with memory on its first write;
 * {@code decommit} returns it at once ({@code madvise(MADV_DONTNEED)}). {@link #liveBytes()} counts
 * the committed bytes of regions beside the allocated blocks. Regions opt out of transparent huge
 * pages, which would back a single committed page with 2 MB.
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

    // Linux's values on x86-64 and aarch64
    private static final int PROT_READ_WRITE = 0x1 | 0x2;
    private static final int MAP_PRIVATE_ANONYMOUS_NORESERVE = 0x02 | 0x20 | 0x4000;
    private static final int MADV_DONTNEED = 4;
    private static final int MADV_NOHUGEPAGE = 15;

    private static final MethodHandle MMAP;
    private static final MethodHandle MUNMAP;
    private static final MethodHandle MADVISE;
    /** The operating system's page size where regions are available, else 0. */
    private static final long OS_PAGE;
    /** Live regions: base address to {@code {size, committed bytes}}. */
    private static final ConcurrentHashMap<Long, long[]> REGIONS = new ConcurrentHashMap<>();

    static {
        Linker linker = Linker.nativeLinker();
        var libc = linker.defaultLookup();
        ALIGNED_ALLOC = linker.downcallHandle(
                libc.find("aligned_alloc").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
        FREE = linker.downcallHandle(libc.find("free").orElseThrow(), FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));
        boolean linux = System.getProperty("os.name", "")
                .toLowerCase(java.util.Locale.ROOT)
                .contains("linux");
        var mmap = linux ? libc.find("mmap") : java.util.Optional.<MemorySegment>empty();
        var munmap = linux ? libc.find("munmap") : java.util.Optional.<MemorySegment>empty();
        var madvise = linux ? libc.find("madvise") : java.util.Optional.<MemorySegment>empty();
        var pageSize = linux ? libc.find("getpagesize") : java.util.Optional.<MemorySegment>empty();
        if (mmap.isPresent() && munmap.isPresent() && madvise.isPresent() && pageSize.isPresent()) {
            MMAP = linker.downcallHandle(
                    mmap.get(),
                    FunctionDescriptor.of(
                            ValueLayout.ADDRESS,
                            ValueLayout.ADDRESS,
                            ValueLayout.JAVA_LONG,
                            ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_LONG));
            MUNMAP = linker.downcallHandle(
                    munmap.get(),
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
            MADVISE = linker.downcallHandle(
                    madvise.get(),
                    FunctionDescriptor.of(
                            ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            long page;
            try {
                page = (int) linker.downcallHandle(pageSize.get(), FunctionDescriptor.of(ValueLayout.JAVA_INT))
                        .invokeExact();
            } catch (Throwable t) {
                throw new ExceptionInInitializerError(t);
            }
            OS_PAGE = page;
        } else {
            MMAP = null;
            MUNMAP = null;
            MADVISE = null;
            OS_PAGE = 0;
        }
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

    /**
     * The size of the pages a region commits one by one (the operating system's page size), or 0
     * where regions are not available (not Linux); {@link #reserve} fails there.
     */
    public static long regionPageSize() {
        return OS_PAGE;
    }

    /**
     * Reserves {@code bytes} (a multiple of {@link #regionPageSize()}) of address space, none of it
     * committed. Returns {@code null} when the operating system refuses the mapping (address space
     * or commit limits); the caller decides what to do without it.
     *
     * @throws UnsupportedOperationException where regions are not available
     */
    public static MemorySegment reserve(long bytes) {
        if (OS_PAGE == 0) {
            throw new UnsupportedOperationException(
                    "regions need Linux's mmap; this is " + System.getProperty("os.name"));
        }
        if (bytes <= 0 || bytes % OS_PAGE != 0) {
            throw new IllegalArgumentException(
                    "region size must be a positive multiple of " + OS_PAGE + " bytes, was " + bytes);
        }
        MemorySegment raw;
        try {
            raw = (MemorySegment) MMAP.invokeExact(
                    MemorySegment.NULL, bytes, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS_NORESERVE, -1, 0L);
        } catch (Throwable t) {
            throw new IllegalStateException("mmap failed", t);
        }
        if (raw.address() == -1L || raw.address() == 0) {
            return null;
        }
        MemorySegment region = raw.reinterpret(bytes);
        madvise(region, 0, bytes, MADV_NOHUGEPAGE);
        REGIONS.put(region.address(), new long[] {bytes, 0});
        return region;
    }

    /**
     * Counts {@code [offset, offset + bytes)} of a live region as committed: the bytes the caller
     * holds there from now on. The kernel backs them on their first write.
     *
     * @throws IllegalStateException if {@code region} is not a live region of this class
     * @throws IllegalArgumentException if the range is not whole pages inside the region
     */
    public static void commit(MemorySegment region, long offset, long bytes) {
        long[] r = region(region, offset, bytes);
        synchronized (r) {
            if (r[1] + bytes > r[0]) {
                throw new IllegalStateException("committing " + bytes + " bytes would hold " + (r[1] + bytes)
                        + " of a region of " + r[0] + " bytes (committed twice?)");
            }
            r[1] += bytes;
        }
        LIVE_BYTES.addAndGet(bytes);
    }

    /**
     * Returns the memory of {@code [offset, offset + bytes)} of a live region to the operating
     * system and stops counting it; the range reads as zeros when next written after a commit.
     *
     * @throws IllegalStateException if more bytes would be decommitted than the region has committed
     */
    public static void decommit(MemorySegment region, long offset, long bytes) {
        long[] r = region(region, offset, bytes);
        synchronized (r) {
            if (bytes > r[1]) {
                throw new IllegalStateException("decommitting " + bytes + " bytes of a region that has " + r[1]
                        + " committed (decommitted twice?)");
            }
            madvise(region, offset, bytes, MADV_DONTNEED);
            r[1] -= bytes;
        }
        LIVE_BYTES.addAndGet(-bytes);
    }

    /**
     * Unmaps a region returned by {@link #reserve}; the caller decommits what it committed first.
     *
     * @throws IllegalStateException if the region is not live, or still has committed bytes
     */
    public static void release(MemorySegment region) {
        long[] r = REGIONS.get(region.address());
        if (r == null || r[0] != region.byteSize()) {
            throw new IllegalStateException("0x" + Long.toHexString(region.address()) + " (" + region.byteSize()
                    + " bytes) is not a live region of NativeMemory (released twice, or never reserved here)");
        }
        synchronized (r) {
            if (r[1] != 0) {
                throw new IllegalStateException("region at 0x" + Long.toHexString(region.address()) + " still has "
                        + r[1] + " committed bytes; decommit them before releasing it");
            }
            REGIONS.remove(region.address());
        }
        int rc;
        try {
            rc = (int) MUNMAP.invokeExact(region, region.byteSize());
        } catch (Throwable t) {
            throw new IllegalStateException("munmap failed", t);
        }
        if (rc != 0) {
            throw new IllegalStateException("munmap of " + region.byteSize() + " bytes failed");
        }
    }

    /** Live regions, process-wide. */
    public static long liveRegions() {
        return REGIONS.size();
    }

    private static long[] region(MemorySegment region, long offset, long bytes) {
        long[] r = REGIONS.get(region.address());
        if (r == null || r[0] != region.byteSize()) {
            throw new IllegalStateException("0x" + Long.toHexString(region.address()) + " (" + region.byteSize()
                    + " bytes) is not a live region of NativeMemory");
        }
        if (offset < 0 || bytes <= 0 || offset > r[0] - bytes || offset % OS_PAGE != 0 || bytes % OS_PAGE != 0) {
            throw new IllegalArgumentException("range [" + offset + ", " + offset + " + " + bytes
                    + ") must be whole pages of " + OS_PAGE + " bytes inside the region's " + r[0]);
        }
        return r;
    }

    private static void madvise(MemorySegment region, long offset, long bytes, int advice) {
        int rc;
        try {
            rc = (int) MADVISE.invokeExact(region.asSlice(offset, bytes), bytes, advice);
        } catch (Throwable t) {
            throw new IllegalStateException("madvise failed", t);
        }
        if (rc != 0 && advice == MADV_DONTNEED) {
            throw new IllegalStateException("madvise(MADV_DONTNEED) of " + bytes + " bytes failed");
        }
    }

    /** Bytes currently allocated through this class, and committed in its regions, process-wide. */
    public static long liveBytes() {
        return LIVE_BYTES.get();
    }

    /** Blocks currently allocated through this class, process-wide. */
    public static long liveBlocks() {
        return LIVE_BLOCKS.get();
    }
}
