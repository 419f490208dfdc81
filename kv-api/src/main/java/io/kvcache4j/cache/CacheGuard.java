package io.kvcache4j.cache;

import java.util.concurrent.atomic.AtomicInteger;

/**
 * Admits one thread at a time into a cache and makes {@code close()} safe against a call in flight.
 *
 * <p>Every public call enters with one compare-and-set and leaves with another. A second thread that
 * tries to enter while the cache is busy gets an {@link IllegalStateException} before it touches
 * anything, so concurrent misuse can neither corrupt the cache nor read freed memory. {@link
 * #close()} on an idle cache closes it at once; on a busy cache it only marks it closing, and the
 * thread inside frees the memory when it leaves ({@link #exit()} returns {@code true}). The
 * compare-and-sets also order the memory effects of one call before the next, so handing a cache
 * from one thread to another needs no further synchronisation.
 */
final class CacheGuard {
    private static final int IDLE = 0;
    private static final int BUSY = 1;
    private static final int CLOSING = 2;
    private static final int CLOSED = 4;

    private final AtomicInteger state = new AtomicInteger(IDLE);

    /** Enters a call. */
    void enter() {
        if (!state.compareAndSet(IDLE, BUSY)) {
            throw refusal(state.get());
        }
    }

    /**
     * Leaves a call; returns {@code true} if {@link #close()} came in meanwhile, in which case the
     * caller must free the cache's memory now and then call {@link #closed()}.
     */
    boolean exit() {
        if (state.compareAndSet(BUSY, IDLE)) {
            return false;
        }
        return state.get() == (BUSY | CLOSING);
    }

    /** Marks the memory freed after {@link #exit()} or {@link #close()} returned {@code true}. */
    void closed() {
        state.set(CLOSED);
    }

    /**
     * Requests close; returns {@code true} if the caller must free the memory now (the cache was
     * idle), {@code false} if it was already closed or closing, or if the thread inside will free it.
     */
    boolean close() {
        while (true) {
            int s = state.get();
            if ((s & (CLOSING | CLOSED)) != 0) {
                return false;
            }
            if (s == IDLE && state.compareAndSet(IDLE, CLOSING)) {
                return true;
            }
            if (s == BUSY && state.compareAndSet(BUSY, BUSY | CLOSING)) {
                return false;
            }
        }
    }

    /** Whether close was requested or done. */
    boolean isClosed() {
        return (state.get() & (CLOSING | CLOSED)) != 0;
    }

    private static IllegalStateException refusal(int s) {
        if ((s & (CLOSING | CLOSED)) != 0) {
            return new IllegalStateException("cache is closed");
        }
        return new IllegalStateException(
                "cache is in use by another thread: a cache is driven by one thread at a time (calls from several"
                        + " threads must be serialised by the caller)");
    }
}
