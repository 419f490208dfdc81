package io.kvcache4j.eval.llama;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * Splits a range of output rows over a fork-join pool of one thread per core. Each output element is computed by
 * exactly one task in a fixed order, so results do not depend on the thread count.
 */
public final class Parallel {
    /** Rows below which a matmul stays on the calling thread. */
    static final int GRAIN = 64;

    @FunctionalInterface
    public interface RangeBody {
        void run(int from, int to);
    }

    private static final ForkJoinPool POOL =
            new ForkJoinPool(Math.max(1, Runtime.getRuntime().availableProcessors()));

    private Parallel() {}

    /**
     * The attention pool of this process, one thread per core like the matmul pool: engines hand it
     * to their caches ({@link io.kvcache4j.api.KvCacheBuilder#attentionPool}) so that a layer's
     * attention (prefill tokens × KV heads, long heads in chunks) runs on every core. Created on first
     * use; its threads are daemons and live as long as the process.
     */
    public static io.kvcache4j.api.AttentionPool attentionPool() {
        return AttentionPoolHolder.POOL;
    }

    private static final class AttentionPoolHolder {
        static final io.kvcache4j.api.AttentionPool POOL = io.kvcache4j.api.AttentionPool.create(
                Math.max(1, Runtime.getRuntime().availableProcessors()));
    }

    public static void forRange(int n, RangeBody body) {
        int threads = POOL.getParallelism();
        if (n <= GRAIN || threads <= 1) {
            body.run(0, n);
            return;
        }
        int chunks = Math.min(threads * 4, (n + GRAIN - 1) / GRAIN);
        POOL.invoke(new Task(body, 0, n, Math.max(GRAIN, (n + chunks - 1) / chunks)));
    }

    private static final class Task extends RecursiveAction {
        private final RangeBody body;
        private final int from;
        private final int to;
        private final int grain;

        Task(RangeBody body, int from, int to, int grain) {
            this.body = body;
            this.from = from;
            this.to = to;
            this.grain = grain;
        }

        @Override
        protected void compute() {
            if (to - from <= grain) {
                body.run(from, to);
                return;
            }
            int mid = (from + to) >>> 1;
            invokeAll(new Task(body, from, mid, grain), new Task(body, mid, to, grain));
        }
    }
}
