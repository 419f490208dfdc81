package io.kvcache4j.cache;

import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;

/**
 * The CPU {@link LayerAttention}: single-pass grouped attention over each head's store (each stored
 * byte read once for the whole GQA group), flash-decoding style across cores.
 *
 * <p><b>Work split.</b> Each (token, KV head) of a batch is one work item; a head that sees more than
 * {@link #CHUNK_TOKENS} slots is cut into chunks of that many slots, one item each, whose partials
 * {@code (output, lse)} are merged by log-sum-exp in chunk order. The split depends on the visible
 * counts alone, and each item is computed by one thread, so outputs are bit-identical whatever the
 * pool's size (or without a pool). The items run on the context's {@link AttentionPool} when there
 * are two or more and enough work to pay for waking the pool; otherwise on the caller's thread.
 *
 * <p><b>Prefill tiles.</b> Where the kernel offers it ({@link AttentionKernel#prefillTileTokens}) and
 * the heads live in f16 {@link PagedHeadStore}s, a batch's consecutive tokens are attended in tiles
 * of that many tokens per KV head and chunk: one pass over the slots every token of the tile sees,
 * with all their query heads as rows (each key and value loaded and widened once for the tile),
 * then each token alone over the rest of its slots. The split falls on a block boundary of the
 * token's own pass and the kernel keeps each row's arithmetic, so every output has the bits of the
 * untiled pass (tested), with or without tiles, whatever the batch.
 *
 * <p><b>Scores.</b> When the eviction policy wants per-key mass the heads are not chunked (the mass
 * of a key needs the head's total log-sum-exp); the heads still run in parallel, and the mass is
 * reported to the cache in head order after the batch.
 *
 * <p>Allocates only when a batch has more items, or a head more slots, than ever before (scratch
 * grows by doubling). Driven by the cache's thread.
 */
public final class CpuLayerAttention implements LayerAttention, AttentionPool.Task {
    /** Slots per chunk of a long head: a fixed constant, so the split never depends on threads. */
    public static final int CHUNK_TOKENS = 16_384;

    /** Below this many visible slots in a whole batch the pool is not woken. */
    static final long PARALLEL_MIN_SLOTS = 4_096;

    private final ModelShape shape;
    private final HeadStore[] stores;
    private final AttentionKernel kernel;
    private final AttentionPool pool;
    private final GroupAttention[] states;
    private final SlotSelection[] selections;
    private final int groupFloats;
    private final int chunkTokens;
    /** Tokens per prefill tile, 1: no tiles. */
    private final int tileTokens;
    /** Per worker, a state of {@code tileTokens} tokens' rows (null without tiles). */
    private final GroupAttention[] tileStates;

    // The batch in flight and its items.
    private LayerBatch batch;
    private int[] itemToken = new int[0];
    private int[] itemHead = new int[0];
    private int[] itemFrom = new int[0];
    private int[] itemTo = new int[0];
    /** Per item: index of its partial in {@link #partOut}, or -1 when it writes straight to the output. */
    private int[] itemPart = new int[0];
    /** Per (token, KV head): its first item and its number of chunks. */
    private int[] headFirst = new int[0];

    private int[] headChunks = new int[0];
    /** Work for the pool: work {@code w} runs items {@code workItems[workFirst[w] ..][0, workCount[w])}. */
    private int[] workFirst = new int[0];

    private int[] workCount = new int[0];
    private int[] workItems = new int[0];

    private float[] partOut = new float[0];
    private float[] partLse = new float[0];
    private float[][] mass = new float[0][];
    private double[] weights = new double[0];

    public CpuLayerAttention(LayerContext context, AttentionKernel kernel) {
        this(context, kernel, CHUNK_TOKENS);
    }

    /**
     * A source that cuts heads into chunks of {@code chunkTokens} slots (tests use small chunks to
     * exercise the merge on short contexts).
     */
    public CpuLayerAttention(LayerContext context, AttentionKernel kernel, int chunkTokens) {
        this(context, kernel, chunkTokens, true);
    }

    /**
     * A source as {@link #CpuLayerAttention(LayerContext, AttentionKernel, int)}, with prefill tiles
     * switched off when {@code tiles} is false (tests compare the two).
     */
    public CpuLayerAttention(LayerContext context, AttentionKernel kernel, int chunkTokens, boolean tiles) {
        if (chunkTokens < 1) {
            throw new IllegalArgumentException("chunkTokens must be >= 1, was " + chunkTokens);
        }
        this.chunkTokens = chunkTokens;
        this.shape = context.shape();
        this.stores = new HeadStore[shape.kvHeads()];
        for (int h = 0; h < stores.length; h++) {
            stores[h] = context.store(h);
        }
        this.kernel = kernel;
        this.pool = context.pool();
        int workers = pool == null ? 1 : pool.parallelism();
        this.states = new GroupAttention[workers];
        this.selections = new SlotSelection[workers];
        for (int w = 0; w < workers; w++) {
            states[w] = new GroupAttention(shape.groupSize(), shape.headDim(), kernel);
            selections[w] = new SlotSelection();
        }
        this.groupFloats = shape.groupSize() * shape.headDim();
        int tile = tiles ? Integer.MAX_VALUE : 1;
        for (HeadStore store : stores) {
            tile = Math.min(
                    tile,
                    store instanceof PagedHeadStore p && p.dtype() == KvDType.F16
                            ? p.prefillTileTokens(shape.groupSize())
                            : 1);
        }
        this.tileTokens = Math.max(1, tile);
        this.tileStates = tileTokens > 1 ? new GroupAttention[workers] : null;
        for (int w = 0; tileStates != null && w < workers; w++) {
            tileStates[w] =
                    new GroupAttention(tileTokens * shape.groupSize(), shape.headDim(), kernel, shape.groupSize());
        }
    }

    @Override
    public boolean reportsScores() {
        return true;
    }

    @Override
    public void attend(LayerBatch b) {
        int kvHeads = shape.kvHeads();
        boolean scores = b.scoreAggregation() != null;
        int items = 0;
        int parts = 0;
        long slots = 0;
        ensureHeads(b.tokens() * kvHeads);
        for (int t = 0; t < b.tokens(); t++) {
            for (int h = 0; h < kvHeads; h++) {
                int visible = b.visible(t, h);
                slots += visible;
                int chunks = scores || visible <= chunkTokens ? 1 : (visible + chunkTokens - 1) / chunkTokens;
                ensureItems(items + chunks);
                headFirst[t * kvHeads + h] = items;
                headChunks[t * kvHeads + h] = chunks;
                for (int c = 0; c < chunks; c++) {
                    itemToken[items] = t;
                    itemHead[items] = h;
                    itemFrom[items] = chunks == 1 ? 0 : c * chunkTokens;
                    itemTo[items] = chunks == 1 ? visible : Math.min(visible, (c + 1) * chunkTokens);
                    itemPart[items] = chunks == 1 ? -1 : parts++;
                    items++;
                }
            }
        }
        ensureParts(parts);
        if (scores) {
            ensureMass(items, b);
        }
        int works = planWork(b, items, scores);
        this.batch = b;
        try {
            if (pool != null && works > 1 && slots >= PARALLEL_MIN_SLOTS) {
                pool.run(this, works);
            } else {
                for (int w = 0; w < works; w++) {
                    run(w, 0);
                }
            }
        } finally {
            this.batch = null;
        }
        if (parts > 0) {
            mergeChunks(b, items);
        }
        if (scores) {
            for (int i = 0; i < items; i++) {
                b.reportScores(itemHead[i], itemToken[i], mass[i], itemTo[i]);
            }
        }
    }

    /**
     * Groups the items into work: tiles of {@code tileTokens} consecutive tokens' items of the same KV
     * head and chunk where tiles apply, single items otherwise. Returns the number of works.
     */
    private int planWork(LayerBatch b, int items, boolean scores) {
        ensureWork(items);
        int kvHeads = shape.kvHeads();
        int works = 0;
        int refs = 0;
        int tile = scores ? 1 : tileTokens;
        int tiled = tile > 1 ? b.tokens() / tile * tile : 0;
        for (int t0 = 0; t0 < tiled; t0 += tile) {
            for (int h = 0; h < kvHeads; h++) {
                int common = Integer.MAX_VALUE;
                int most = 0;
                for (int r = 0; r < tile; r++) {
                    int chunks = headChunks[(t0 + r) * kvHeads + h];
                    common = Math.min(common, chunks);
                    most = Math.max(most, chunks);
                }
                for (int c = 0; c < most; c++) {
                    if (c < common) {
                        workFirst[works] = refs;
                        workCount[works++] = tile;
                        for (int r = 0; r < tile; r++) {
                            workItems[refs++] = headFirst[(t0 + r) * kvHeads + h] + c;
                        }
                        continue;
                    }
                    for (int r = 0; r < tile; r++) {
                        if (c < headChunks[(t0 + r) * kvHeads + h]) {
                            workFirst[works] = refs;
                            workCount[works++] = 1;
                            workItems[refs++] = headFirst[(t0 + r) * kvHeads + h] + c;
                        }
                    }
                }
            }
        }
        // the items of the tokens past the last whole tile, one work each
        int untiled = tiled == 0 ? 0 : headFirst[tiled * kvHeads - 1] + headChunks[tiled * kvHeads - 1];
        for (int i = untiled; i < items; i++) {
            workFirst[works] = refs;
            workCount[works++] = 1;
            workItems[refs++] = i;
        }
        return works;
    }

    /** One work: an item (a (token, KV head) pass or one chunk of it) or a tile of items. */
    @Override
    public void run(int work, int worker) {
        if (workCount[work] == 1) {
            runItem(workItems[workFirst[work]], worker);
        } else {
            runTile(workFirst[work], workCount[work], worker);
        }
    }

    /**
     * Items {@code workItems[first ..][0, tokens)}: consecutive tokens, one KV head, one chunk start.
     * The slots all of them see up to a block boundary in one pass with every token's rows, then
     * each token alone from there.
     */
    private void runTile(int first, int tokens, int worker) {
        LayerBatch b = batch;
        GroupAttention tile = tileStates[worker];
        GroupAttention st = states[worker];
        int item0 = workItems[first];
        int h = itemHead[item0];
        int from = itemFrom[item0];
        int minTo = Integer.MAX_VALUE;
        for (int r = 0; r < tokens; r++) {
            minTo = Math.min(minTo, itemTo[workItems[first + r]]);
        }
        PagedHeadStore store = (PagedHeadStore) stores[h];
        int shared = store.blockBoundary(from, minTo);
        int qRow = shape.queryRowFloats();
        tile.beginTokens(b.queries(), b.queriesOffset() + itemToken[item0] * qRow + h * groupFloats, qRow, b.scale());
        if (shared > from) {
            store.attend(tile, selections[worker].range(from, shared));
        }
        for (int r = 0; r < tokens; r++) {
            int item = workItems[first + r];
            tile.copyTokenTo(r, st);
            if (itemTo[item] > shared) {
                store.attend(st, selections[worker].range(shared, itemTo[item]));
            }
            finishItem(item, st, b);
        }
    }

    /** One item: a (token, KV head) pass or one chunk of it. */
    private void runItem(int item, int worker) {
        LayerBatch b = batch;
        GroupAttention st = states[worker];
        int t = itemToken[item];
        int h = itemHead[item];
        int from = itemFrom[item];
        int to = itemTo[item];
        int qRow = shape.queryRowFloats();
        int headOff = h * groupFloats;
        ScoreAggregation agg = b.scoreAggregation();
        st.begin(b.queries(), b.queriesOffset() + t * qRow + headOff, b.scale());
        if (agg != null) {
            st.recordLogits(to);
        }
        stores[h].attend(st, selections[worker].range(from, to));
        finishItem(item, st, b);
        if (agg != null) {
            kernel.mass(st, to, agg, mass[item]);
        }
    }

    /** Writes a finished item's output and log-sum-exp (or its chunk's partial). */
    private void finishItem(int item, GroupAttention st, LayerBatch b) {
        int t = itemToken[item];
        int h = itemHead[item];
        int qRow = shape.queryRowFloats();
        int headOff = h * groupFloats;
        int part = itemPart[item];
        if (part < 0) {
            st.finish(b.out(), b.outOffset() + t * qRow + headOff);
            float[] lse = b.lse();
            if (lse != null) {
                int g = shape.groupSize();
                for (int j = 0; j < g; j++) {
                    lse[b.lseOffset() + t * shape.queryHeads() + h * g + j] = st.lse(j);
                }
            }
        } else {
            st.finish(partOut, part * groupFloats);
            for (int j = 0; j < shape.groupSize(); j++) {
                partLse[part * shape.groupSize() + j] = st.lse(j);
            }
        }
    }

    /**
     * Merges each chunked (token, KV head)'s partials, in chunk order: {@code L = max + log Σ exp(lse_c −
     * max)}, {@code o = Σ exp(lse_c − L)·o_c}, with {@link StrictMath} so the bits never depend on the
     * JIT.
     */
    private void mergeChunks(LayerBatch b, int items) {
        int g = shape.groupSize();
        int d = shape.headDim();
        int qRow = shape.queryRowFloats();
        float[] out = b.out();
        float[] lseOut = b.lse();
        for (int i = 0; i < items; ) {
            if (itemPart[i] < 0) {
                i++;
                continue;
            }
            int t = itemToken[i];
            int h = itemHead[i];
            int first = itemPart[i];
            int end = i;
            while (end < items && itemToken[end] == t && itemHead[end] == h) {
                end++;
            }
            int chunks = end - i;
            for (int j = 0; j < g; j++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int c = 0; c < chunks; c++) {
                    max = Math.max(max, partLse[(first + c) * g + j]);
                }
                int o = b.outOffset() + t * qRow + h * groupFloats + j * d;
                if (max == Double.NEGATIVE_INFINITY) {
                    java.util.Arrays.fill(out, o, o + d, 0f);
                    if (lseOut != null) {
                        lseOut[b.lseOffset() + t * shape.queryHeads() + h * g + j] = Float.NEGATIVE_INFINITY;
                    }
                    continue;
                }
                double sum = 0;
                for (int c = 0; c < chunks; c++) {
                    sum += StrictMath.exp(partLse[(first + c) * g + j] - max);
                }
                double total = max + StrictMath.log(sum);
                ensureWeights(chunks);
                for (int c = 0; c < chunks; c++) {
                    float l = partLse[(first + c) * g + j];
                    weights[c] = l == Float.NEGATIVE_INFINITY ? 0 : StrictMath.exp(l - total);
                }
                for (int e = 0; e < d; e++) {
                    double acc = 0;
                    for (int c = 0; c < chunks; c++) {
                        acc += weights[c] * partOut[(first + c) * groupFloats + j * d + e];
                    }
                    out[o + e] = (float) acc;
                }
                if (lseOut != null) {
                    lseOut[b.lseOffset() + t * shape.queryHeads() + h * g + j] = (float) total;
                }
            }
            i = end;
        }
    }

    private void ensureWeights(int chunks) {
        if (weights.length < chunks) {
            weights = new double[Math.max(chunks, weights.length * 2)];
        }
    }

    private void ensureItems(int n) {
        if (itemToken.length < n) {
            int cap = Math.max(n, Math.max(8, itemToken.length * 2));
            itemToken = java.util.Arrays.copyOf(itemToken, cap);
            itemHead = java.util.Arrays.copyOf(itemHead, cap);
            itemFrom = java.util.Arrays.copyOf(itemFrom, cap);
            itemTo = java.util.Arrays.copyOf(itemTo, cap);
            itemPart = java.util.Arrays.copyOf(itemPart, cap);
        }
    }

    private void ensureHeads(int n) {
        if (headFirst.length < n) {
            int cap = Math.max(n, headFirst.length * 2);
            headFirst = new int[cap];
            headChunks = new int[cap];
        }
    }

    private void ensureWork(int items) {
        if (workFirst.length < items) {
            int cap = Math.max(items, Math.max(8, workFirst.length * 2));
            workFirst = new int[cap];
            workCount = new int[cap];
            workItems = new int[cap];
        }
    }

    private void ensureParts(int parts) {
        if (partLse.length < parts * shape.groupSize()) {
            int cap = Math.max(parts, partLse.length / shape.groupSize() * 2);
            partOut = new float[cap * groupFloats];
            partLse = new float[cap * shape.groupSize()];
        }
    }

    private void ensureMass(int items, LayerBatch b) {
        if (mass.length < items) {
            mass = java.util.Arrays.copyOf(mass, Math.max(items, mass.length * 2));
        }
        for (int i = 0; i < items; i++) {
            int need = itemTo[i];
            if (mass[i] == null || mass[i].length < need) {
                mass[i] = new float[Math.max(need, mass[i] == null ? 16 : mass[i].length * 2)];
            }
        }
    }
}
