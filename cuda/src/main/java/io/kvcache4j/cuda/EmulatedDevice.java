package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;

/**
 * A {@link Device} in host memory: allocations are native segments behind synthetic 64-bit
 * addresses, copies on the launch stream happen at once, and each launch runs its {@link
 * KernelEmulator} twin. What the CPU build tests the stores and the layer attention against; byte
 * accounting matches the device's (allocation sizes, not rounded).
 *
 * <p>Transfers ({@link #transferToDevice}) are held back as late as the device may run them: each
 * runs, reading its source then, only when an event recorded after it is awaited ({@link
 * #awaitOnStream}, {@link #awaitOnHost}) or when memory is freed. So a caller that reads a
 * destination before awaiting its transfer, or rewrites a source while a transfer still reads it,
 * sees wrong rows here too, and its tests fail.
 */
public final class EmulatedDevice implements Device {
    private static final long BASE = 0x7f00_0000_0000L;
    private final TreeMap<Long, MemorySegment> allocations = new TreeMap<>();
    private long next = BASE;
    private long allocated;
    private final Arena arena = Arena.ofShared();

    private record Host(MemorySegment segment) implements HostBuffer {}

    private record Pending(long dst, HostBuffer src, long srcOffset, long bytes) {}

    /** Transfers queued and not yet run, in order; {@link #ran} of them ran before the first. */
    private final java.util.ArrayDeque<Pending> transfers = new java.util.ArrayDeque<>();

    private long queued;
    private long ran;

    private static final class Ev implements Event {
        /** Transfers queued before the last record; the event is complete once that many ran. */
        long mark;
    }

    private final java.util.Set<Ev> events = new java.util.HashSet<>();

    @Override
    public String name() {
        return "emulated (CPU, KernelEmulator)";
    }

    @Override
    public synchronized long malloc(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("bytes must be >= 1, was " + bytes);
        }
        long ptr = next;
        next += (bytes + 255) & -256L;
        allocations.put(ptr, arena.allocate(bytes, 256));
        allocated += bytes;
        return ptr;
    }

    @Override
    public synchronized void free(long ptr) {
        runTransfers(queued);
        MemorySegment seg = allocations.remove(ptr);
        if (seg == null) {
            throw new IllegalArgumentException("not an allocation: 0x" + Long.toHexString(ptr));
        }
        allocated -= seg.byteSize();
    }

    @Override
    public synchronized long bytesAllocated() {
        return allocated;
    }

    /** The memory from {@code ptr} to the end of its allocation. */
    synchronized MemorySegment at(long ptr) {
        Map.Entry<Long, MemorySegment> e = allocations.floorEntry(ptr);
        if (e == null || ptr - e.getKey() >= e.getValue().byteSize()) {
            throw new IllegalArgumentException("address 0x" + Long.toHexString(ptr) + " is not allocated");
        }
        return e.getValue().asSlice(ptr - e.getKey());
    }

    /** Live pinned buffers (by identity) and their bytes. */
    private final Map<HostBuffer, Long> hostBuffers = new java.util.IdentityHashMap<>();

    private long hostAllocated;

    @Override
    public synchronized HostBuffer allocHost(long bytes) {
        Host h = new Host(arena.allocate(Math.max(1, bytes), 64));
        hostBuffers.put(h, Math.max(1, bytes));
        hostAllocated += Math.max(1, bytes);
        return h;
    }

    @Override
    public synchronized void freeHost(HostBuffer buffer) {
        Long bytes = hostBuffers.remove(buffer);
        if (bytes == null) {
            throw new IllegalArgumentException("not a live pinned buffer of this device (freed already?): " + buffer);
        }
        runTransfers(queued);
        hostAllocated -= bytes;
        // the arena's memory itself is released with the device
    }

    @Override
    public synchronized long hostBytesAllocated() {
        return hostAllocated;
    }

    @Override
    public synchronized Event newEvent() {
        Ev e = new Ev();
        events.add(e);
        return e;
    }

    @Override
    public synchronized void freeEvent(Event event) {
        runTransfers(ev(event).mark);
        events.remove(event);
    }

    private Ev ev(Event event) {
        if (!(event instanceof Ev e) || !events.contains(e)) {
            throw new IllegalArgumentException("not a live event of this device: " + event);
        }
        return e;
    }

    @Override
    public synchronized void transferToDevice(long dst, HostBuffer src, long srcOffset, long bytes) {
        at(dst); // checks the address now, as the driver does
        if (srcOffset < 0 || bytes < 0 || srcOffset + bytes > src.segment().byteSize()) {
            throw new IndexOutOfBoundsException("transfer of " + bytes + " bytes from offset " + srcOffset + " of a "
                    + src.segment().byteSize() + "-byte host buffer");
        }
        transfers.add(new Pending(dst, src, srcOffset, bytes));
        queued++;
    }

    @Override
    public synchronized void recordTransfer(Event event) {
        ev(event).mark = queued;
    }

    @Override
    public synchronized void awaitOnStream(Event event) {
        runTransfers(ev(event).mark);
    }

    @Override
    public synchronized void awaitOnHost(Event event) {
        runTransfers(ev(event).mark);
    }

    /** Transfers queued and not yet run (tests). */
    public synchronized int pendingTransfers() {
        return transfers.size();
    }

    private void runTransfers(long through) {
        while (ran < through) {
            Pending p = transfers.poll();
            MemorySegment.copy(p.src().segment(), p.srcOffset(), at(p.dst()), 0, p.bytes());
            ran++;
        }
    }

    @Override
    public void copyToDevice(long dst, HostBuffer src, long srcOffset, long bytes) {
        MemorySegment.copy(src.segment(), srcOffset, at(dst), 0, bytes);
    }

    @Override
    public void copyToHost(HostBuffer dst, long dstOffset, long src, long bytes) {
        MemorySegment.copy(at(src), 0, dst.segment(), dstOffset, bytes);
    }

    @Override
    public void copyOnDevice(long dst, long src, long bytes) {
        MemorySegment.copy(at(src), 0, at(dst), 0, bytes);
    }

    @Override
    public void synchronize() {}

    @Override
    public void decodeExact(
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
            float scale) {
        MemorySegment table = at(kvPointers);
        KernelEmulator.ExactHead[] heads = new KernelEmulator.ExactHead[kvHeads];
        for (int h = 0; h < kvHeads; h++) {
            heads[h] = new KernelEmulator.ExactHead(
                    at(table.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 16L * h)),
                    at(table.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 16L * h + 8)));
        }
        KernelEmulator.decodeExact(
                type,
                heads,
                at(queries),
                at(visible),
                at(partOut),
                at(partLse),
                tokens,
                group,
                headDim,
                chunk,
                maxChunks,
                scale);
    }

    @Override
    public void decodeInt4(
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
            float scale) {
        MemorySegment table = at(groupPointers);
        MemorySegment[] groups = new MemorySegment[kvHeads];
        for (int h = 0; h < kvHeads; h++) {
            groups[h] = at(table.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 8L * h));
        }
        KernelEmulator.decodeInt4(
                groups,
                layout,
                at(queries),
                at(visible),
                at(partOut),
                at(partLse),
                tokens,
                group,
                chunk,
                maxChunks,
                scale);
    }

    @Override
    public void combine(
            long partOut,
            long partLse,
            long extraOut,
            long extraLse,
            long out,
            long lse,
            int rows,
            int maxChunks,
            int D) {
        KernelEmulator.combine(
                at(partOut),
                at(partLse),
                extraOut == 0 ? null : at(extraOut),
                extraOut == 0 ? null : at(extraLse),
                at(out),
                at(lse),
                rows,
                maxChunks,
                D);
    }

    @Override
    public void append(KvDType type, long src, int tokens, int headDim, long keys, long values, int row0) {
        KernelEmulator.append(type, at(src), tokens, headDim, at(keys), at(values), row0);
    }

    @Override
    public void gather(long src, long dst, long sources, int moved, int elems) {
        KernelEmulator.gather(at(src), at(dst), at(sources), moved, elems);
    }

    @Override
    public synchronized void close() {
        transfers.clear();
        events.clear();
        allocations.clear();
        hostBuffers.clear();
        hostAllocated = 0;
        allocated = 0;
        arena.close();
    }
}
