package io.kvcache4j.api;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A fixed set of threads that run the items of one task at a time, the calling thread included:
 * what a cache's attention uses to spread a layer's heads, and long heads' token chunks, over cores.
 *
 * <p>Threads are created once, in {@link #create}, as daemon threads, and wait (spin briefly, then
 * park) between tasks; {@link #run} allocates nothing. Which thread runs which item is left to
 * timing, so a task must make its result independent of that: the cache's attention splits work by
 * the data alone and merges in a fixed order, which makes its outputs bit-identical for any pool
 * size, or none.
 *
 * <p>Thread-safe: caches may share one pool; concurrent {@link #run} calls take turns. The pool
 * belongs to whoever created it, who closes it after the last cache that uses it.
 */
public final class AttentionPool implements AutoCloseable {
    /** Work of {@code items} independent items. */
    @FunctionalInterface
    public interface Task {
        /** Runs item {@code item} on the thread with index {@code worker} in {@code [0, parallelism())}. */
        void run(int item, int worker);
    }

    private static final int SPINS = 2_000;

    private final Thread[] workers;
    private final ReentrantLock turn = new ReentrantLock();
    /** Generation in the upper 32 bits, next unclaimed item in the lower. */
    private final AtomicLong cursor = new AtomicLong();

    private final AtomicInteger done = new AtomicInteger();
    // The task of even and of odd generations: a thread that read a generation from the cursor reads
    // the matching pair, which the next-but-one run overwrites only after the cursor has moved on.
    private volatile Task evenTask;
    private volatile int evenItems;
    private volatile Task oddTask;
    private volatile int oddItems;
    private volatile boolean closed;
    private volatile Throwable failure;

    private AttentionPool(int threads) {
        this.workers = new Thread[threads - 1];
        for (int i = 0; i < workers.length; i++) {
            int index = i + 1;
            Thread t = new Thread(() -> workLoop(index), "kvcache4j-attention-" + index);
            t.setDaemon(true);
            workers[i] = t;
        }
        for (Thread t : workers) {
            t.start();
        }
    }

    /**
     * A pool of {@code threads} in all, the caller of {@link #run} counted: {@code threads − 1}
     * threads are started.
     *
     * @throws IllegalArgumentException unless {@code 1 <= threads <= 4096}
     */
    public static AttentionPool create(int threads) {
        if (threads < 1 || threads > 4096) {
            throw new IllegalArgumentException("threads must be in [1, 4096], was " + threads);
        }
        return new AttentionPool(threads);
    }

    /** Threads that run items, the caller included. */
    public int parallelism() {
        return workers.length + 1;
    }

    /**
     * Runs items {@code 0 .. items-1} of {@code task} and returns when all are done. The first
     * exception an item throws is rethrown (wrapped when checked) after every item has finished.
     *
     * @throws IllegalStateException if the pool is closed
     */
    public void run(Task task, int items) {
        if (items < 0) {
            throw new IllegalArgumentException("items must be >= 0, was " + items);
        }
        turn.lock();
        try {
            if (closed) {
                throw new IllegalStateException("attention pool is closed");
            }
            if (items == 0) {
                return;
            }
            if (workers.length == 0 || items == 1) {
                for (int i = 0; i < items; i++) {
                    task.run(i, 0);
                }
                return;
            }
            this.failure = null;
            done.set(0);
            long generation = (cursor.get() >>> 32) + 1;
            if ((generation & 1) == 0) {
                evenTask = task;
                evenItems = items;
            } else {
                oddTask = task;
                oddItems = items;
            }
            cursor.set(generation << 32);
            for (Thread t : workers) {
                LockSupport.unpark(t);
            }
            work(generation, task, items, 0);
            for (int spins = 0; done.get() < items; spins++) {
                if (spins < SPINS) {
                    Thread.onSpinWait();
                } else {
                    Thread.yield();
                }
            }
            if ((generation & 1) == 0) {
                evenTask = null;
            } else {
                oddTask = null;
            }
            Throwable f = failure;
            if (f != null) {
                if (f instanceof RuntimeException e) {
                    throw e;
                }
                if (f instanceof Error e) {
                    throw e;
                }
                throw new IllegalStateException("attention task failed", f);
            }
        } finally {
            turn.unlock();
        }
    }

    private void work(long generation, Task t, int n, int worker) {
        while (true) {
            long c = cursor.get();
            if (c >>> 32 != generation) {
                return;
            }
            int item = (int) c;
            if (item >= n) {
                return;
            }
            if (!cursor.compareAndSet(c, c + 1)) {
                continue;
            }
            try {
                t.run(item, worker);
            } catch (Throwable e) {
                if (failure == null) {
                    failure = e;
                }
            } finally {
                done.incrementAndGet();
            }
        }
    }

    private void workLoop(int index) {
        long seen = 0;
        int idle = 0;
        while (!closed) {
            long generation = cursor.get() >>> 32;
            boolean even = (generation & 1) == 0;
            Task t = even ? evenTask : oddTask;
            int n = even ? evenItems : oddItems;
            if (generation != seen && t != null) {
                seen = generation;
                work(generation, t, n, index);
                idle = 0;
            } else if (idle++ < SPINS) {
                Thread.onSpinWait();
            } else {
                LockSupport.park(this);
            }
        }
    }

    /** Stops the threads (after the task in flight, if any). Idempotent. */
    @Override
    public void close() {
        turn.lock();
        try {
            closed = true;
        } finally {
            turn.unlock();
        }
        for (Thread t : workers) {
            LockSupport.unpark(t);
        }
    }
}
