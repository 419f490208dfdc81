package io.kvcache4j.store;

import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.HeadView;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.Partial;

/**
 * The {@link KvCache}: one {@link HeadStore} per (layer, KV head) (exact {@link PagedHeadStore} by
 * default, or a codec's or tier's), attention by
 * the process's {@link AttentionKernel}, eviction by the bound {@link EvictionTracker}.
 *
 * <p>The decode path (append one token, attend one token) allocates nothing once the score scratch
 * has reached the retained token count. See {@link KvCache} for the contract.
 */
public final class PagedKvCache implements KvCache {
    private final ModelShape shape;
    private final KvDType dtype;
    private final String policyName;
    private final AttentionKernel kernel;
    private final int capacityTokens;
    private final float scale;
    private final HeadStore[][] stores;
    private final int[] nextPosition;
    private final int[] attendedUpTo;
    private final GroupAttention state;
    private final GroupAttention scoreState;
    private final EvictionTracker tracker;
    private final ScoreAggregation aggregation;
    private float[] mass = new float[0];
    private boolean closed;

    public PagedKvCache(
            ModelShape shape,
            KvDType dtype,
            EvictionPolicy policy,
            int pageTokens,
            int capacityTokens,
            AttentionKernel kernel,
            HeadStoreFactory storeFactory) {
        this.shape = shape;
        this.dtype = dtype;
        this.policyName = policy.name();
        this.kernel = kernel;
        this.capacityTokens = capacityTokens;
        this.scale = (float) (1.0 / Math.sqrt(shape.headDim()));
        this.nextPosition = new int[shape.layers()];
        this.attendedUpTo = new int[shape.layers()];
        java.util.Arrays.fill(attendedUpTo, -1);
        this.stores = new HeadStore[shape.layers()][shape.kvHeads()];
        for (int l = 0; l < shape.layers(); l++) {
            final int layer = l;
            for (int h = 0; h < shape.kvHeads(); h++) {
                final int head = h;
                stores[l][h] = storeFactory.create(new HeadStoreFactory.Spec(
                        layer, head, dtype, shape.headDim(), pageTokens, kernel, () -> pending(layer)));
            }
        }
        this.state = new GroupAttention(shape.groupSize(), shape.headDim());
        this.scoreState = new GroupAttention(shape.groupSize(), shape.headDim());
        this.tracker = policy.bind(new Access());
        this.aggregation = tracker.scoreAggregation();
    }

    @Override
    public ModelShape shape() {
        return shape;
    }

    @Override
    public KvDType dtype() {
        return dtype;
    }

    @Override
    public String policyName() {
        return policyName;
    }

    @Override
    public int nextPosition(int layer) {
        ensureOpen();
        shape.checkLayer(layer);
        return nextPosition[layer];
    }

    @Override
    public int pendingTokens(int layer) {
        ensureOpen();
        shape.checkLayer(layer);
        return pending(layer);
    }

    private int pending(int layer) {
        return nextPosition[layer] - 1 - attendedUpTo[layer];
    }

    @Override
    public int retainedTokens(int layer, int kvHead) {
        ensureOpen();
        shape.checkLayer(layer);
        shape.checkKvHead(kvHead);
        return stores[layer][kvHead].count();
    }

    @Override
    public long bytesHeld() {
        ensureOpen();
        long total = 0;
        for (HeadStore[] layer : stores) {
            for (HeadStore s : layer) {
                total += s.bytesHeld();
            }
        }
        return total;
    }

    @Override
    public long metadataBytes() {
        ensureOpen();
        long total = tracker.stateBytes();
        for (HeadStore[] layer : stores) {
            for (HeadStore s : layer) {
                total += s.metadataBytes();
            }
        }
        return total;
    }

    @Override
    public void append(int layer, float[] keys, int keysOffset, float[] values, int valuesOffset, int tokens) {
        ensureOpen();
        shape.checkLayer(layer);
        if (tokens < 1) {
            throw new IllegalArgumentException("tokens must be >= 1, was " + tokens);
        }
        int row = shape.kvRowFloats();
        checkRange("keys", keys.length, keysOffset, (long) tokens * row);
        checkRange("values", values.length, valuesOffset, (long) tokens * row);
        checkRepresentable("key", layer, keys, keysOffset, tokens);
        checkRepresentable("value", layer, values, valuesOffset, tokens);
        if ((long) nextPosition[layer] + tokens > Integer.MAX_VALUE) {
            throw new IllegalStateException("layer " + layer + " would exceed " + Integer.MAX_VALUE + " positions");
        }
        for (int h = 0; h < shape.kvHeads(); h++) {
            long after = (long) stores[layer][h].count() + tokens;
            if (after > capacityTokens) {
                throw new IllegalStateException("appending " + tokens + " tokens to layer " + layer + ", kvHead " + h
                        + " would hold " + after + " tokens; capacity is " + capacityTokens);
            }
        }
        int d = shape.headDim();
        for (int t = 0; t < tokens; t++) {
            int position = nextPosition[layer] + t;
            int base = t * row;
            for (int h = 0; h < shape.kvHeads(); h++) {
                stores[layer][h].append(keys, keysOffset + base + h * d, values, valuesOffset + base + h * d, position);
            }
        }
        nextPosition[layer] += tokens;
        tracker.afterAppend(layer, tokens);
    }

    @Override
    public void attend(int layer, float[] queries, int queriesOffset, int tokens, float[] out, int outOffset) {
        ensureOpen();
        shape.checkLayer(layer);
        if (tokens < 1) {
            throw new IllegalArgumentException("tokens must be >= 1, was " + tokens);
        }
        int qRow = shape.queryRowFloats();
        checkRange("queries", queries.length, queriesOffset, (long) tokens * qRow);
        checkRange("out", out.length, outOffset, (long) tokens * qRow);
        checkPending(layer, tokens);
        checkFinite("query", layer, queries, queriesOffset, (long) tokens * qRow, qRow);
        int g = shape.groupSize();
        int d = shape.headDim();
        int last = -1;
        for (int t = 0; t < tokens; t++) {
            int qpos = attendedUpTo[layer] + 1;
            int qOff = queriesOffset + t * qRow;
            tracker.beforeAttention(layer, qpos, queries, qOff);
            for (int h = 0; h < shape.kvHeads(); h++) {
                int headOff = h * g * d;
                runHead(layer, h, qpos, queries, qOff + headOff);
                state.finish(out, outOffset + t * qRow + headOff);
                reportScores(layer, h, qpos);
            }
            attendedUpTo[layer] = qpos;
            last = qpos;
        }
        tracker.afterAttention(layer, last);
    }

    @Override
    public void attendPartial(int layer, float[] queries, int queriesOffset, Partial dst) {
        ensureOpen();
        shape.checkLayer(layer);
        if (dst.heads() != shape.queryHeads() || dst.headDim() != shape.headDim()) {
            throw new IllegalArgumentException("partial has " + dst.heads() + " heads x " + dst.headDim()
                    + "; expected " + shape.queryHeads() + " x " + shape.headDim());
        }
        int qRow = shape.queryRowFloats();
        checkRange("queries", queries.length, queriesOffset, qRow);
        checkPending(layer, 1);
        checkFinite("query", layer, queries, queriesOffset, qRow, qRow);
        int g = shape.groupSize();
        int qpos = attendedUpTo[layer] + 1;
        tracker.beforeAttention(layer, qpos, queries, queriesOffset);
        for (int h = 0; h < shape.kvHeads(); h++) {
            runHead(layer, h, qpos, queries, queriesOffset + h * g * shape.headDim());
            state.finish(dst, h * g);
            reportScores(layer, h, qpos);
        }
        attendedUpTo[layer] = qpos;
        tracker.afterAttention(layer, qpos);
    }

    private void runHead(int layer, int kvHead, int qpos, float[] queries, int offset) {
        HeadStore store = stores[layer][kvHead];
        int visible = store.count() - (nextPosition[layer] - 1 - qpos);
        state.begin(queries, offset, scale);
        if (aggregation != null) {
            state.recordLogits(visible);
        }
        store.attend(state, visible);
        lastVisible = visible;
    }

    private int lastVisible;

    private void reportScores(int layer, int kvHead, int qpos) {
        if (aggregation == null) {
            return;
        }
        if (mass.length < lastVisible) {
            mass = new float[Math.max(lastVisible, mass.length * 2)];
        }
        kernel.mass(state, lastVisible, aggregation, mass);
        tracker.onScores(layer, kvHead, qpos, mass, lastVisible);
    }

    @Override
    public void endPrefill() {
        ensureOpen();
        for (int l = 0; l < shape.layers(); l++) {
            if (pending(l) != 0) {
                throw new IllegalStateException(
                        "endPrefill: layer " + l + " has " + pending(l) + " appended tokens not attended yet");
            }
        }
        tracker.endPrefill();
    }

    @Override
    public HeadView view(int layer, int kvHead) {
        ensureOpen();
        shape.checkLayer(layer);
        shape.checkKvHead(kvHead);
        return stores[layer][kvHead];
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (HeadStore[] layer : stores) {
            for (HeadStore s : layer) {
                s.close();
            }
        }
    }

    private void checkPending(int layer, int tokens) {
        int pending = pending(layer);
        if (tokens > pending) {
            throw new IllegalStateException("attend " + tokens + " tokens on layer " + layer + ", but only " + pending
                    + " appended tokens wait for attention (append before attend)");
        }
    }

    private void checkRepresentable(String what, int layer, float[] a, int offset, int tokens) {
        int row = shape.kvRowFloats();
        int d = shape.headDim();
        for (int i = 0, n = tokens * row; i < n; i++) {
            float x = a[offset + i];
            if (!dtype.representable(x)) {
                int t = i / row;
                throw new IllegalArgumentException(what + " of layer " + layer + ", token " + t + " (position "
                        + (nextPosition[layer] + t) + "), kvHead " + (i % row) / d + ", element " + (i % d) + " is "
                        + x + "; must be finite and within [-" + dtype.maxFinite() + ", " + dtype.maxFinite() + "] for "
                        + dtype.name().toLowerCase(java.util.Locale.ROOT));
            }
        }
    }

    private void checkFinite(String what, int layer, float[] a, int offset, long n, int row) {
        for (int i = 0; i < n; i++) {
            float x = a[offset + i];
            if (!Float.isFinite(x)) {
                throw new IllegalArgumentException(what + " of layer " + layer + ", token " + (i / row) + ", element "
                        + (i % row) + " is " + x + "; must be finite");
            }
        }
    }

    private static void checkRange(String name, int length, int offset, long needed) {
        if (offset < 0 || offset + needed > length) {
            throw new IllegalArgumentException(
                    name + ": offset " + offset + " + " + needed + " floats exceeds array length " + length);
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("cache is closed");
        }
    }

    private final class Access implements CacheAccess {
        @Override
        public ModelShape shape() {
            return shape;
        }

        @Override
        public KvDType dtype() {
            return dtype;
        }

        @Override
        public AttentionKernel kernel() {
            return kernel;
        }

        @Override
        public HeadSlots head(int layer, int kvHead) {
            shape.checkLayer(layer);
            shape.checkKvHead(kvHead);
            return stores[layer][kvHead];
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
            HeadStore store = stores[layer][kvHead];
            shape.checkLayer(layer);
            scoreState.begin(queries, offset, scale);
            scoreState.recordLogits(visibleSlots);
            store.attend(scoreState, visibleSlots);
            scoreState.finish(scratchOut(), 0);
            kernel.mass(scoreState, visibleSlots, agg, massOut);
        }

        private float[] scratch;

        private float[] scratchOut() {
            if (scratch == null) {
                scratch = new float[shape.groupSize() * shape.headDim()];
            }
            return scratch;
        }
    }
}
