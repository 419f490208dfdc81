package io.kvcache4j.hybrid;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Asynchronous copies from any tier into staging buffers in a {@link Tier} (the fast tier), with
 * bounded staging memory: a fixed number of staging buffers, each grown to the largest transfer it
 * has held. A transfer takes a free buffer when its turn comes and waits for one when none is free;
 * {@link Transfer#release()} frees it again. Transfers run one at a time, in submission order, on
 * one daemon thread (the copy engine of a device; started on the first submission).
 *
 * <p><b>Ordering and deadlock.</b> Because transfers complete in submission order, a consumer that
 * uses and releases them in that order never waits on itself, provided it holds at most {@link
 * #buffers()} transfers at once.
 *
 * <p><b>Memory.</b> Buffers are allocated from the staging tier on the engine's thread (a refusal
 * fails that transfer, not the engine) and are all returned to it by {@link #close()}; {@link
 * #stagingBytes()} is exactly what they hold. Thread-safe.
 */
public final class TransferEngine implements AutoCloseable {
    /** How long the engine's thread waits for a free buffer before checking for cancellation. */
    private static final long POLL_MILLIS = 5;

    /** A staging buffer: one block of the staging tier, grown when a transfer needs more. */
    static final class Buffer {
        MemorySegment block;
    }

    private final Tier staging;
    private final int buffers;
    private final ArrayBlockingQueue<Buffer> free;
    private final List<Buffer> all = new ArrayList<>();
    private final AtomicLong bytesCopied = new AtomicLong();
    private final AtomicLong transfers = new AtomicLong();
    private final java.util.Set<Transfer> pending = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private ExecutorService thread;
    private boolean closed;

    /**
     * An engine with {@code buffers} staging buffers in {@code staging}.
     *
     * @throws IllegalArgumentException unless {@code 1 <= buffers <= 4096}
     */
    public TransferEngine(Tier staging, int buffers) {
        if (buffers < 1 || buffers > 4096) {
            throw new IllegalArgumentException("staging buffers must be in [1, 4096], was " + buffers);
        }
        this.staging = java.util.Objects.requireNonNull(staging, "staging");
        this.buffers = buffers;
        this.free = new ArrayBlockingQueue<>(buffers);
        for (int i = 0; i < buffers; i++) {
            Buffer b = new Buffer();
            all.add(b);
            free.add(b);
        }
    }

    /** Number of staging buffers. */
    public int buffers() {
        return buffers;
    }

    /** Buffers not taken by a transfer now. */
    public int freeBuffers() {
        return free.size();
    }

    /** Bytes the staging buffers hold in the staging tier now, exactly. */
    public synchronized long stagingBytes() {
        long total = 0;
        for (Buffer b : all) {
            if (b.block != null) {
                total += b.block.byteSize();
            }
        }
        return total;
    }

    /** Bytes copied by completed transfers so far. */
    public long bytesCopied() {
        return bytesCopied.get();
    }

    /** Transfers completed so far. */
    public long transfers() {
        return transfers.get();
    }

    /**
     * Submits a copy of {@code blocks[0..count)}, {@code blockBytes} bytes each, into one staging
     * buffer, block {@code i} at offset {@code i·blockBytes}. The caller keeps the source blocks alive
     * and unchanged until the transfer is done (or {@link Transfer#cancel() cancelled}).
     *
     * @throws IllegalStateException if the engine is closed
     */
    public synchronized Transfer submit(MemorySegment[] blocks, int count, long blockBytes) {
        if (closed) {
            throw new IllegalStateException("transfer engine is closed");
        }
        if (count < 1 || count > blocks.length || blockBytes < 1) {
            throw new IllegalArgumentException(
                    "count " + count + " must be in [1, " + blocks.length + "] and blockBytes " + blockBytes + " >= 1");
        }
        MemorySegment[] src = java.util.Arrays.copyOf(blocks, count);
        Transfer t = new Transfer(this, Math.multiplyExact(blockBytes, count));
        if (thread == null) {
            thread = Executors.newSingleThreadExecutor(r -> {
                Thread th = new Thread(r, "kvcache4j-transfer");
                th.setDaemon(true);
                return th;
            });
        }
        pending.add(t);
        try {
            thread.execute(() -> copy(t, src, blockBytes));
        } catch (RejectedExecutionException e) {
            throw new IllegalStateException("transfer engine is closed", e);
        }
        return t;
    }

    private void copy(Transfer t, MemorySegment[] src, long blockBytes) {
        Buffer b = null;
        try {
            while (b == null) {
                if (t.cancelled()) {
                    return;
                }
                b = free.poll(POLL_MILLIS, TimeUnit.MILLISECONDS);
            }
            if (!t.start()) {
                free.add(b);
                return;
            }
            if (!t.take(b)) {
                free.add(b);
                t.fail(new java.util.concurrent.CancellationException("released before it started"));
                return;
            }
            long need = t.bytes();
            synchronized (this) {
                if (b.block == null || b.block.byteSize() < need) {
                    if (b.block != null) {
                        staging.free(b.block);
                        b.block = null;
                    }
                    b.block = staging.allocate(need);
                }
            }
            MemorySegment dst = b.block;
            for (int i = 0; i < src.length; i++) {
                MemorySegment.copy(src[i], 0, dst, i * blockBytes, blockBytes);
            }
            bytesCopied.addAndGet(need);
            transfers.incrementAndGet();
            t.complete(dst.asSlice(0, need));
        } catch (InterruptedException e) {
            t.cancel();
        } catch (Throwable e) {
            t.fail(e);
        } finally {
            pending.remove(t);
        }
    }

    void giveBack(Buffer b) {
        free.add(b);
    }

    /**
     * Stops the engine's thread (a copy in progress finishes; queued transfers are cancelled) and
     * returns every staging buffer to the staging tier. Transfers still held must not be used
     * afterwards. Idempotent.
     */
    @Override
    public void close() {
        ExecutorService t;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            t = thread;
        }
        if (t != null) {
            for (Transfer p : pending) {
                p.cancel(); // a queued transfer ends now; a copy in progress finishes first
            }
            t.shutdownNow();
            try {
                if (!t.awaitTermination(1, TimeUnit.MINUTES)) {
                    throw new IllegalStateException("transfer thread did not stop within a minute");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        synchronized (this) {
            for (Buffer b : all) {
                if (b.block != null) {
                    staging.free(b.block);
                    b.block = null;
                }
            }
        }
    }
}
