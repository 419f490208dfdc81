package io.kvcache4j.hybrid;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * One asynchronous copy of blocks into a staging buffer of a {@link TransferEngine}, with explicit
 * completion: {@link #await()} blocks until the copy is done and returns the staged bytes, {@link
 * #isDone()} polls. The staging buffer stays taken until {@link #release()}, which every submitted
 * transfer needs exactly once (after use, after a failure, or to drop an unused prefetch).
 *
 * <p>Thread-safe: submitted by one thread, completed by the engine's thread.
 */
public final class Transfer {
    private final TransferEngine engine;
    private final long bytes;
    private final CompletableFuture<MemorySegment> done = new CompletableFuture<>();
    /** {@link #QUEUED}, {@link #COPYING}, {@link #CANCELLED} or {@link #DONE}. */
    private final java.util.concurrent.atomic.AtomicInteger state = new java.util.concurrent.atomic.AtomicInteger();

    static final int QUEUED = 0;
    static final int COPYING = 1;
    static final int CANCELLED = 2;
    static final int DONE = 3;
    private TransferEngine.Buffer buffer;
    private boolean released;

    Transfer(TransferEngine engine, long bytes) {
        this.engine = engine;
        this.bytes = bytes;
    }

    /** Bytes this transfer copies. */
    public long bytes() {
        return bytes;
    }

    /** Whether the copy has completed, normally or not. */
    public boolean isDone() {
        return done.isDone();
    }

    /**
     * Waits for the copy and returns the staged bytes: a segment of exactly {@link #bytes()} bytes in
     * the fast tier, valid until {@link #release()}.
     *
     * @throws IllegalStateException if the copy failed (its cause attached), was cancelled, or the
     *     waiting thread was interrupted
     */
    public MemorySegment await() {
        try {
            return done.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for a transfer of " + bytes + " bytes", e);
        } catch (ExecutionException e) {
            throw new IllegalStateException(
                    "transfer of " + bytes + " bytes failed: " + e.getCause().getMessage(), e.getCause());
        } catch (CancellationException e) {
            throw new IllegalStateException("transfer of " + bytes + " bytes was cancelled", e);
        }
    }

    /**
     * Cancels the copy if it has not started, and waits until the engine no longer touches the source
     * blocks (a copy in progress finishes first). Idempotent; {@link #release()} is still required.
     */
    public void cancel() {
        if (state.compareAndSet(QUEUED, CANCELLED)) {
            done.completeExceptionally(new CancellationException("cancelled before it started"));
            return;
        }
        try {
            done.handle((s, e) -> null).get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException e) {
            throw new AssertionError(e);
        }
    }

    /** Returns the staging buffer to the engine (if the copy took one). Idempotent. */
    public void release() {
        TransferEngine.Buffer b;
        synchronized (this) {
            if (released) {
                return;
            }
            released = true;
            b = buffer;
            buffer = null;
        }
        if (b != null) {
            engine.giveBack(b);
        }
    }

    /** The engine starts the copy; false if the transfer was cancelled first. */
    boolean start() {
        return state.compareAndSet(QUEUED, COPYING);
    }

    boolean cancelled() {
        return state.get() == CANCELLED;
    }

    /** Records the buffer the engine took; false if the transfer was released meanwhile (give it back). */
    synchronized boolean take(TransferEngine.Buffer b) {
        if (released) {
            return false;
        }
        buffer = b;
        return true;
    }

    void complete(MemorySegment staged) {
        state.set(DONE);
        done.complete(staged);
    }

    void fail(Throwable t) {
        state.set(DONE);
        done.completeExceptionally(t);
    }
}
