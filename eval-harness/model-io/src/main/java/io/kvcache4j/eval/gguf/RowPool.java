package io.kvcache4j.eval.gguf;

import io.kvcache4j.api.AttentionPool;
import java.util.concurrent.ForkJoinPool;

/**
 * The row-parallel path of {@link MappedWeightMatrix}: one process-wide {@link AttentionPool} of
 * {@link #THREADS} threads (the caller included) that runs a product's row ranges. The pool's
 * threads are started once, on the first product large enough to split, and {@link #run} allocates
 * nothing, so a decode step's matmuls allocate nothing either (a parallel stream over the common
 * fork-join pool allocated its pipeline and tasks on every call).
 *
 * <p>The pool's threads read the matrix, so its segment must be readable from any thread (a model's
 * mapping is: {@link GgufModel} maps it in a shared arena); a segment confined to one thread fails
 * the split product with {@link WrongThreadException}, rethrown to the caller.
 *
 * <p>Which thread computes which range is left to timing; every output element is still computed
 * by one thread in a fixed order, so the bits do not depend on it. Products from several threads
 * take turns on the pool: {@link #run} holds this object's monitor from setting the job to its end.
 */
final class RowPool implements AttentionPool.Task {
    /**
     * Threads a product splits over, the caller included: the common fork-join pool's parallelism
     * ({@code -Djava.util.concurrent.ForkJoinPool.common.parallelism=N} sets it), at least 1.
     */
    static final int THREADS = Math.max(1, ForkJoinPool.getCommonPoolParallelism());

    private static final class Holder {
        static final RowPool SHARED = new RowPool(AttentionPool.create(THREADS));
    }

    private final AttentionPool pool;
    // the job in flight, written under this object's monitor before the pool runs it
    private MappedWeightMatrix matrix;
    private float[] x;
    private float[] y;
    private int xOff;
    private int yOff;
    private int tokens;
    private int perItem;
    private boolean vector;

    private RowPool(AttentionPool pool) {
        this.pool = pool;
    }

    /** The shared pool; only called when {@link #THREADS} {@code > 1}. */
    static RowPool shared() {
        return Holder.SHARED;
    }

    /**
     * Computes {@code m}'s rows in {@code items} ranges of {@code perItem} rows (the last one
     * shorter): {@link MappedWeightMatrix#matvecRows} when {@code vector}, else {@link
     * MappedWeightMatrix#matmulRows}.
     */
    synchronized void run(
            MappedWeightMatrix m,
            boolean vector,
            float[] x,
            int xOff,
            float[] y,
            int yOff,
            int tokens,
            int items,
            int perItem) {
        this.matrix = m;
        this.vector = vector;
        this.x = x;
        this.xOff = xOff;
        this.y = y;
        this.yOff = yOff;
        this.tokens = tokens;
        this.perItem = perItem;
        try {
            pool.run(this, items);
        } finally {
            this.matrix = null;
            this.x = null;
            this.y = null;
        }
    }

    @Override
    public void run(int item, int worker) {
        int r0 = item * perItem;
        int r1 = Math.min(matrix.rows(), r0 + perItem);
        if (vector) {
            matrix.matvecRows(x, xOff, y, yOff, r0, r1);
        } else {
            matrix.matmulRows(x, y, tokens, r0, r1);
        }
    }
}
