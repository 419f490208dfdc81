package io.kvcache4j.testing;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.SlotSelection;
import java.util.Arrays;

/**
 * A store written outside kv-api's kernels, the way a codec or a tier would be: f32 rows on the heap,
 * its own scoring in plain Java fed through {@link GroupAttention}'s public online-softmax protocol,
 * and an optional eviction granularity {@code g > 1} (a codec-shaped store that can only drop whole
 * aligned groups of tokens). It checks every promise the cache makes about compaction and throws if
 * one is broken. {@link #factory} also offers a layer-level source of its own (float64 attention
 * over all heads of a layer at once, with per-key mass) so every policy can run on it.
 */
public final class OnHeapStore implements HeadStore {
    private final int d;
    private final int granularity;
    private float[] keys = new float[0];
    private float[] values = new float[0];
    private int count;
    private int capacity;
    private final float[] logits;

    public OnHeapStore(int headDim, int granularity, int group) {
        this.d = headDim;
        this.granularity = granularity;
        this.logits = new float[group * GroupAttention.BLOCK];
    }

    /** A factory of these stores; with {@code ownLayerSource} the layer's attention is {@link Layer}. */
    public static HeadStoreFactory factory(int granularity, boolean ownLayerSource) {
        return new HeadStoreFactory() {
            @Override
            public HeadStore create(Spec spec) {
                return new OnHeapStore(spec.headDim(), granularity, spec.shape().groupSize());
            }

            @Override
            public LayerAttention layerAttention(LayerContext context) {
                return ownLayerSource
                        ? new Layer(context.shape(), context.stores())
                        : HeadStoreFactory.super.layerAttention(context);
            }

            @Override
            public String name() {
                return "onheap-g" + granularity + (ownLayerSource ? "-layer" : "");
            }
        };
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public int granularity() {
        return granularity;
    }

    @Override
    public void append(float[] k, int kOff, float[] v, int vOff, int rowStride, int tokens) {
        if (count + tokens > capacity) {
            capacity = count + tokens; // exact: bytesHeld() is what the tokens need, nothing more
            keys = Arrays.copyOf(keys, capacity * d);
            values = Arrays.copyOf(values, capacity * d);
        }
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(k, kOff + t * rowStride, keys, (count + t) * d, d);
            System.arraycopy(v, vOff + t * rowStride, values, (count + t) * d, d);
        }
        count += tokens;
    }

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        check(from >= 0 && moved >= 0 && from + moved <= newCount && newCount <= count, "range");
        for (int j = 0; j < moved; j++) {
            int s = sources[j];
            check(s >= from + j && s < count, "source " + s + " for slot " + (from + j));
            check(j == 0 || s > sources[j - 1], "sources increase");
            check(s < from + moved || s >= newCount, "source " + s + " inside the unchanged range");
            if (granularity > 1) {
                int dst = from + j;
                check(dst % granularity != 0 || s % granularity == 0, "group " + s + " moved to " + dst + " whole");
                check(dst % granularity == 0 || s == sources[j - 1] + 1, "group members move together");
            }
            System.arraycopy(keys, s * d, keys, (from + j) * d, d);
            System.arraycopy(values, s * d, values, (from + j) * d, d);
        }
        if (granularity > 1) {
            check(from % granularity == 0, "from " + from + " is a group start");
            check((count - newCount) % granularity == 0, "whole groups removed: " + (count - newCount));
        }
        count = newCount;
        if (capacity > count) {
            capacity = count;
            keys = Arrays.copyOf(keys, capacity * d);
            values = Arrays.copyOf(values, capacity * d);
        }
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError("compaction contract broken: " + what);
        }
    }

    @Override
    public void attend(GroupAttention st, SlotSelection selection) {
        if (selection.limit() > count) {
            throw new IllegalArgumentException("selection past " + count);
        }
        int g = st.group();
        int block = GroupAttention.BLOCK;
        int[] slots = new int[block];
        selection.reset();
        int ordinal = 0;
        int n = 0;
        for (int slot = selection.next(); ; slot = selection.next()) {
            if (slot >= 0) {
                slots[n++] = slot;
            }
            if (n == block || (slot < 0 && n > 0)) {
                for (int h = 0; h < g; h++) {
                    for (int j = 0; j < n; j++) {
                        double s = 0;
                        for (int i = 0; i < d; i++) {
                            s += (double) st.queries()[h * d + i] * keys[slots[j] * d + i];
                        }
                        logits[h * block + j] = (float) s;
                    }
                }
                st.pushLogits(logits, n, ordinal);
                for (int h = 0; h < g; h++) {
                    for (int j = 0; j < n; j++) {
                        float w = logits[h * block + j];
                        for (int i = 0; i < d; i++) {
                            st.accumulator()[h * d + i] += w * values[slots[j] * d + i];
                        }
                    }
                }
                ordinal += n;
                n = 0;
            }
            if (slot < 0) {
                return;
            }
        }
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        System.arraycopy(keys, slot * d, dst, offset, d);
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        System.arraycopy(values, slot * d, dst, offset, d);
    }

    @Override
    public long bytesHeld() {
        return 8L * capacity * d;
    }

    @Override
    public void close() {
        keys = null;
        values = null;
        count = 0;
    }

    /** Float64 attention over every head of a layer at once, with per-key mass. */
    static final class Layer implements LayerAttention {
        private final ModelShape shape;
        private final OnHeapStore[] stores;

        Layer(ModelShape shape, HeadStore[] stores) {
            this.shape = shape;
            this.stores = new OnHeapStore[stores.length];
            for (int h = 0; h < stores.length; h++) {
                this.stores[h] = (OnHeapStore) stores[h];
            }
        }

        @Override
        public boolean reportsScores() {
            return true;
        }

        @Override
        public void attend(LayerBatch b) {
            int d = shape.headDim();
            int g = shape.groupSize();
            for (int t = 0; t < b.tokens(); t++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    OnHeapStore s = stores[h];
                    int visible = b.visible(t, h);
                    double[] massSum = new double[visible];
                    double[] massMax = new double[visible];
                    for (int j = 0; j < g; j++) {
                        int qh = h * g + j;
                        int qOff = b.queriesOffset() + t * shape.queryRowFloats() + qh * d;
                        double[] logit = new double[visible];
                        double max = Double.NEGATIVE_INFINITY;
                        for (int k = 0; k < visible; k++) {
                            double dot = 0;
                            for (int i = 0; i < d; i++) {
                                dot += (double) (b.queries()[qOff + i] * b.scale()) * s.keys[k * d + i];
                            }
                            logit[k] = dot;
                            max = Math.max(max, dot);
                        }
                        double sum = 0;
                        for (int k = 0; k < visible; k++) {
                            sum += Math.exp(logit[k] - max);
                        }
                        int oOff = b.outOffset() + t * shape.queryRowFloats() + qh * d;
                        for (int i = 0; i < d; i++) {
                            double o = 0;
                            for (int k = 0; k < visible; k++) {
                                o += Math.exp(logit[k] - max) / sum * s.values[k * d + i];
                            }
                            b.out()[oOff + i] = visible == 0 ? 0f : (float) o;
                        }
                        if (b.lse() != null) {
                            b.lse()[b.lseOffset() + t * shape.queryHeads() + qh] =
                                    visible == 0 ? Float.NEGATIVE_INFINITY : (float) (max + Math.log(sum));
                        }
                        for (int k = 0; k < visible; k++) {
                            double p = Math.exp(logit[k] - max) / sum;
                            massSum[k] += p;
                            massMax[k] = Math.max(massMax[k], p);
                        }
                    }
                    if (b.scoreAggregation() != null) {
                        float[] mass = new float[visible];
                        for (int k = 0; k < visible; k++) {
                            mass[k] = (float)
                                    switch (b.scoreAggregation()) {
                                        case SUM -> massSum[k];
                                        case MEAN -> massSum[k] / g;
                                        case MAX -> massMax[k];
                                    };
                        }
                        b.reportScores(h, t, mass, visible);
                    }
                }
            }
        }
    }
}
