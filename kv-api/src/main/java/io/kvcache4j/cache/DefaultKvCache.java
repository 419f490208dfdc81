package io.kvcache4j.cache;

import io.kvcache4j.api.AttentionPool;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.FullPolicy;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.HeadView;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.attention.Partial;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.SlotSelection;

/**
 * The {@link KvCache}: per (layer, KV head) a {@link HeadStore} from the builder's factory and a
 * {@link SlotTable} with the cache's bookkeeping; per layer a {@link LayerAttention} from the same
 * factory; eviction by the bound {@link EvictionTracker}; every public call admitted by a {@link
 * CacheGuard}.
 *
 * <p>Validation happens before any state changes, so a call that throws leaves the cache as it was.
 * The decode path (append one token, attend one token) allocates nothing once scratch arrays have
 * reached the retained token count. See {@link KvCache} for the contract.
 */
public final class DefaultKvCache implements KvCache {
    private final ModelShape shape;
    private final String storage;
    private final String policyName;
    private final int capacityTokens;
    private final float scale;
    private final HeadStore[][] stores;
    private final SlotTable[][] slots;
    private final HeadView[][] views;
    private final LayerAttention[] sources;
    private final int[] nextPosition;
    private final int[] attendedUpTo;
    private final boolean batchable;
    private final GroupAttention scoreState;
    private final SlotSelection scoreSelection = new SlotSelection();
    private final float[] scoreOut;
    private final EvictionTracker tracker;
    private final ScoreAggregation aggregation;
    private final Scores scores = new Scores();
    private final CacheGuard guard = new CacheGuard();
    private final float maxMagnitude;
    private LayerBatch batch;

    public DefaultKvCache(
            ModelShape shape,
            EvictionPolicy policy,
            int capacityTokens,
            AttentionKernel kernel,
            HeadStoreFactory factory,
            AttentionPool pool) {
        this.shape = shape;
        this.storage = factory.name();
        this.policyName = policy.name();
        this.capacityTokens = capacityTokens;
        this.scale = (float) (1.0 / Math.sqrt(shape.headDim()));
        this.nextPosition = new int[shape.layers()];
        this.attendedUpTo = new int[shape.layers()];
        java.util.Arrays.fill(attendedUpTo, -1);
        this.stores = new HeadStore[shape.layers()][shape.kvHeads()];
        this.slots = new SlotTable[shape.layers()][shape.kvHeads()];
        this.views = new HeadView[shape.layers()][shape.kvHeads()];
        this.sources = new LayerAttention[shape.layers()];
        try {
            for (int l = 0; l < shape.layers(); l++) {
                final int layer = l;
                for (int h = 0; h < shape.kvHeads(); h++) {
                    HeadStore s = factory.create(new HeadStoreFactory.Spec(shape, l, h));
                    if (s == null) {
                        throw new IllegalStateException("store factory " + storage + " returned no store");
                    }
                    stores[l][h] = s;
                    slots[l][h] = new SlotTable(s, () -> pending(layer));
                    views[l][h] = new GuardedView(slots[l][h]);
                }
                sources[l] = factory.layerAttention(new LayerContext(shape, l, stores[l], pool));
            }
            float max = Float.MAX_VALUE;
            for (HeadStore[] layer : stores) {
                for (HeadStore s : layer) {
                    max = Math.min(max, s.maxMagnitude());
                }
            }
            this.maxMagnitude = max;
            this.scoreState = new GroupAttention(shape.groupSize(), shape.headDim(), kernel);
            this.scoreOut = new float[shape.groupSize() * shape.headDim()];
            this.tracker = policy.bind(new Access());
            this.aggregation = tracker.scoreAggregation();
            if (aggregation != null) {
                for (LayerAttention source : sources) {
                    if (!source.reportsScores()) {
                        throw new IllegalArgumentException("policy " + policyName
                                + " needs attention scores, but storage " + storage + " cannot report them");
                    }
                }
            }
        } catch (RuntimeException | Error e) {
            freeStores();
            throw e;
        }
        this.batchable = policy instanceof FullPolicy;
        this.batch = new LayerBatch(shape, 1);
    }

    @Override
    public ModelShape shape() {
        return shape;
    }

    @Override
    public String storage() {
        return storage;
    }

    @Override
    public String policyName() {
        return policyName;
    }

    @Override
    public int nextPosition(int layer) {
        guard.enter();
        try {
            shape.checkLayer(layer);
            return nextPosition[layer];
        } finally {
            leave();
        }
    }

    @Override
    public int pendingTokens(int layer) {
        guard.enter();
        try {
            shape.checkLayer(layer);
            return pending(layer);
        } finally {
            leave();
        }
    }

    private int pending(int layer) {
        return nextPosition[layer] - 1 - attendedUpTo[layer];
    }

    @Override
    public int retainedTokens(int layer, int kvHead) {
        guard.enter();
        try {
            shape.checkLayer(layer);
            shape.checkKvHead(kvHead);
            return slots[layer][kvHead].count();
        } finally {
            leave();
        }
    }

    @Override
    public long bytesHeld() {
        guard.enter();
        try {
            long total = 0;
            for (HeadStore[] layer : stores) {
                for (HeadStore s : layer) {
                    total += s.bytesHeld();
                }
            }
            return total;
        } finally {
            leave();
        }
    }

    @Override
    public long metadataBytes() {
        guard.enter();
        try {
            long total = tracker.stateBytes();
            for (SlotTable[] layer : slots) {
                for (SlotTable s : layer) {
                    total += s.metadataBytes();
                }
            }
            return total;
        } finally {
            leave();
        }
    }

    @Override
    public void append(int layer, float[] keys, int keysOffset, float[] values, int valuesOffset, int tokens) {
        guard.enter();
        try {
            shape.checkLayer(layer);
            if (tokens < 1) {
                throw new IllegalArgumentException("tokens must be >= 1, was " + tokens);
            }
            int row = shape.kvRowFloats();
            checkRange("keys", keys, keysOffset, (long) tokens * row);
            checkRange("values", values, valuesOffset, (long) tokens * row);
            checkFiniteKv("key", layer, keys, keysOffset, tokens);
            checkFiniteKv("value", layer, values, valuesOffset, tokens);
            if ((long) nextPosition[layer] + tokens > Integer.MAX_VALUE) {
                throw new IllegalStateException("layer " + layer + " would exceed " + Integer.MAX_VALUE + " positions");
            }
            for (int h = 0; h < shape.kvHeads(); h++) {
                long after = (long) slots[layer][h].count() + tokens;
                if (after > capacityTokens) {
                    throw new IllegalStateException("appending " + tokens + " tokens to layer " + layer + ", kvHead "
                            + h + " would hold " + after + " tokens; capacity is " + capacityTokens);
                }
            }
            int d = shape.headDim();
            int first = nextPosition[layer];
            for (int h = 0; h < shape.kvHeads(); h++) {
                stores[layer][h].append(keys, keysOffset + h * d, values, valuesOffset + h * d, row, tokens);
                slots[layer][h].appended(first, tokens);
            }
            nextPosition[layer] += tokens;
            tracker.afterAppend(layer, tokens);
        } finally {
            leave();
        }
    }

    @Override
    public void attend(int layer, float[] queries, int queriesOffset, int tokens, float[] out, int outOffset) {
        guard.enter();
        try {
            int qRow = shape.queryRowFloats();
            checkAttend(layer, queries, queriesOffset, tokens);
            checkRange("out", out, outOffset, (long) tokens * qRow);
            run(layer, queries, queriesOffset, tokens, out, outOffset, null, 0);
        } finally {
            leave();
        }
    }

    @Override
    public void attendPartial(
            int layer,
            float[] queries,
            int queriesOffset,
            int tokens,
            float[] out,
            int outOffset,
            float[] lse,
            int lseOffset) {
        guard.enter();
        try {
            checkAttend(layer, queries, queriesOffset, tokens);
            checkRange("out", out, outOffset, (long) tokens * shape.queryRowFloats());
            checkRange("lse", lse, lseOffset, (long) tokens * shape.queryHeads());
            run(layer, queries, queriesOffset, tokens, out, outOffset, lse, lseOffset);
        } finally {
            leave();
        }
    }

    @Override
    public void attendPartial(int layer, float[] queries, int queriesOffset, Partial dst) {
        if (dst.heads() != shape.queryHeads() || dst.headDim() != shape.headDim()) {
            throw new IllegalArgumentException("partial has " + dst.heads() + " heads x " + dst.headDim()
                    + "; expected " + shape.queryHeads() + " x " + shape.headDim());
        }
        attendPartial(layer, queries, queriesOffset, 1, dst.out(), 0, dst.lse(), 0);
    }

    private void checkAttend(int layer, float[] queries, int queriesOffset, int tokens) {
        shape.checkLayer(layer);
        if (tokens < 1) {
            throw new IllegalArgumentException("tokens must be >= 1, was " + tokens);
        }
        int qRow = shape.queryRowFloats();
        checkRange("queries", queries, queriesOffset, (long) tokens * qRow);
        int pending = pending(layer);
        if (tokens > pending) {
            throw new IllegalStateException("attend " + tokens + " tokens on layer " + layer + ", but only " + pending
                    + " appended tokens wait for attention (append before attend)");
        }
        for (int i = 0, n = tokens * qRow; i < n; i++) {
            float x = queries[queriesOffset + i];
            if (!Float.isFinite(x)) {
                throw new IllegalArgumentException("query of layer " + layer + ", token " + (i / qRow) + ", element "
                        + (i % qRow) + " is " + x + "; must be finite");
            }
        }
    }

    /** Attention of the next {@code tokens} pending tokens through the layer's source. */
    private void run(int layer, float[] q, int qOff, int tokens, float[] out, int outOff, float[] lse, int lseOff) {
        LayerAttention source = sources[layer];
        int qRow = shape.queryRowFloats();
        int last = -1;
        if (batchable) {
            if (batch.maxTokens() < tokens) {
                batch = new LayerBatch(shape, Math.max(tokens, batch.maxTokens() * 2));
            }
            batch.set(layer, tokens, q, qOff, scale, out, outOff, lse, lseOff, null, null);
            int pending = pending(layer);
            for (int t = 0; t < tokens; t++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    batch.setVisible(t, h, slots[layer][h].count() - (pending - 1 - t));
                }
            }
            source.attend(batch);
            attendedUpTo[layer] += tokens;
            last = attendedUpTo[layer];
        } else {
            for (int t = 0; t < tokens; t++) {
                int qpos = attendedUpTo[layer] + 1;
                int rowOff = qOff + t * qRow;
                tracker.beforeAttention(layer, qpos, q, rowOff);
                int pending = pending(layer);
                scores.layer = layer;
                scores.position = qpos;
                batch.set(
                        layer,
                        1,
                        q,
                        rowOff,
                        scale,
                        out,
                        outOff + t * qRow,
                        lse,
                        lseOff + t * shape.queryHeads(),
                        aggregation,
                        aggregation == null ? null : scores);
                for (int h = 0; h < shape.kvHeads(); h++) {
                    batch.setVisible(0, h, slots[layer][h].count() - (pending - 1));
                }
                source.attend(batch);
                attendedUpTo[layer] = qpos;
                last = qpos;
            }
        }
        tracker.afterAttention(layer, last);
    }

    /** Forwards the source's per-key mass to the tracker with the query's position. */
    private final class Scores implements LayerBatch.ScoreSink {
        int layer;
        int position;

        @Override
        public void onScores(int kvHead, int token, float[] mass, int count) {
            tracker.onScores(layer, kvHead, position + token, mass, count);
        }
    }

    @Override
    public void endPrefill() {
        guard.enter();
        try {
            for (int l = 0; l < shape.layers(); l++) {
                if (pending(l) != 0) {
                    throw new IllegalStateException(
                            "endPrefill: layer " + l + " has " + pending(l) + " appended tokens not attended yet");
                }
            }
            tracker.endPrefill();
        } finally {
            leave();
        }
    }

    @Override
    public HeadView view(int layer, int kvHead) {
        guard.enter();
        try {
            shape.checkLayer(layer);
            shape.checkKvHead(kvHead);
            return views[layer][kvHead];
        } finally {
            leave();
        }
    }

    @Override
    public void close() {
        if (guard.close()) {
            freeStores();
            guard.closed();
        }
    }

    private void leave() {
        if (guard.exit()) {
            freeStores();
            guard.closed();
        }
    }

    private void freeStores() {
        RuntimeException failure = null;
        for (HeadStore[] layer : stores) {
            for (HeadStore s : layer) {
                if (s == null) {
                    continue;
                }
                try {
                    s.close();
                } catch (RuntimeException e) {
                    if (failure == null) {
                        failure = e;
                    } else {
                        failure.addSuppressed(e);
                    }
                }
            }
        }
        // Layer sources that hold memory of their own (device buffers, staging) free it after the stores.
        for (LayerAttention source : sources) {
            if (source instanceof AutoCloseable c) {
                try {
                    c.close();
                } catch (Exception e) {
                    RuntimeException r = e instanceof RuntimeException re ? re : new IllegalStateException(e);
                    if (failure == null) {
                        failure = r;
                    } else {
                        failure.addSuppressed(r);
                    }
                }
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    private void checkFiniteKv(String what, int layer, float[] a, int offset, int tokens) {
        int row = shape.kvRowFloats();
        int d = shape.headDim();
        for (int i = 0, n = tokens * row; i < n; i++) {
            float x = a[offset + i];
            if (!Float.isFinite(x) || !representable(x)) {
                int t = i / row;
                throw new IllegalArgumentException(what + " of layer " + layer + ", token " + t + " (position "
                        + (nextPosition[layer] + t) + "), kvHead " + (i % row) / d + ", element " + (i % d) + " is "
                        + x + "; must be finite and within [-" + maxMagnitude + ", " + maxMagnitude + "] for "
                        + storage);
            }
        }
    }

    private boolean representable(float x) {
        return Math.abs(x) <= maxMagnitude;
    }

    private static void checkRange(String name, float[] a, int offset, long needed) {
        if (a == null) {
            throw new IllegalArgumentException(name + " is null");
        }
        if (offset < 0 || offset + needed > a.length) {
            throw new IllegalArgumentException(
                    name + ": offset " + offset + " + " + needed + " floats exceeds array length " + a.length);
        }
    }

    /** A read view that goes through the guard. */
    private final class GuardedView implements HeadView {
        private final SlotTable table;

        GuardedView(SlotTable table) {
            this.table = table;
        }

        @Override
        public int count() {
            guard.enter();
            try {
                return table.count();
            } finally {
                leave();
            }
        }

        @Override
        public int position(int slot) {
            guard.enter();
            try {
                return table.position(slot);
            } finally {
                leave();
            }
        }

        @Override
        public void readKey(int slot, float[] dst, int offset) {
            guard.enter();
            try {
                checkRange("dst", dst, offset, shape.headDim());
                table.readKey(slot, dst, offset);
            } finally {
                leave();
            }
        }

        @Override
        public void readValue(int slot, float[] dst, int offset) {
            guard.enter();
            try {
                checkRange("dst", dst, offset, shape.headDim());
                table.readValue(slot, dst, offset);
            } finally {
                leave();
            }
        }
    }

    private final class Access implements CacheAccess {
        @Override
        public ModelShape shape() {
            return shape;
        }

        @Override
        public HeadSlots head(int layer, int kvHead) {
            shape.checkLayer(layer);
            shape.checkKvHead(kvHead);
            return slots[layer][kvHead];
        }

        @Override
        public int nextPosition(int layer) {
            shape.checkLayer(layer);
            return nextPosition[layer];
        }

        @Override
        public int pendingTokens(int layer) {
            shape.checkLayer(layer);
            return pending(layer);
        }

        @Override
        public void attentionMass(
                int layer,
                int kvHead,
                float[] queries,
                int offset,
                int visibleSlots,
                ScoreAggregation agg,
                float[] massOut) {
            shape.checkLayer(layer);
            shape.checkKvHead(kvHead);
            scoreState.begin(queries, offset, scale);
            scoreState.recordLogits(visibleSlots);
            stores[layer][kvHead].attend(scoreState, scoreSelection.prefix(visibleSlots));
            scoreState.finish(scoreOut, 0);
            scoreState.kernel().mass(scoreState, visibleSlots, agg, massOut);
        }
    }
}
