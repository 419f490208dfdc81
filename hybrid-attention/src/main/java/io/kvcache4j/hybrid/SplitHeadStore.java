package io.kvcache4j.hybrid;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.Partial;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.SlotSelection;
import java.util.Arrays;

/**
 * A store of one (layer, KV head) split between two tiers: the first {@code sinks} slots and the
 * newest {@code recent} slots in the fast tier, the slots between them in the slow tier, both as
 * exact f16 pages. {@link #attend} does the split internally, so the cache and its layer source need
 * not know about it: the fast slots of the selection are attended into the running pass exactly, the
 * slow ones by {@link #attendSlow} (which picks a subset and attends it into a separate partial), and
 * the slow partial is merged into the pass by log-sum-exp ({@link GroupAttention#mergePartial}).
 *
 * <p><b>Placement.</b> Fast-tier rows are {@code [sinks…, recent window…]} in slot order; slow-tier
 * rows are the middle slots in slot order. An append that pushes tokens out of the recent window
 * moves them to the end of the slow tier (MInference's "the oldest recent token moves into the
 * index"), in {@code O(recent + appended)} row copies. A compaction (eviction) re-places every kept
 * row, {@code O(count)}: this storage is meant for caches without eviction, where it replaces it.
 *
 * <p><b>Selections.</b> A prefix or range selection (what the cache and {@link SplitLayerAttention}
 * make) sees a prefix of the slow rows, over which the subset is chosen. Any other selection attends
 * its slow slots exactly, all of them.
 *
 * <p><b>Bytes.</b> {@link #bytesHeld()} is the exact sum of both tiers' pages. Driven by one thread
 * at a time (attention included: scratch is the store's).
 */
abstract class SplitHeadStore implements HeadStore {
    final TierPages fast;
    final SplitRows slow;
    final int sinks;
    final int recent;
    final int headDim;
    final int group;
    private int count;
    /** Fast rows that are sinks: {@code min(sinks, count)}. */
    private int sinkRows;

    // Scratch.
    private int[] fastList = new int[0];
    private int[] slowList = new int[0];
    private final SlotSelection fastSel = new SlotSelection();
    private final SlotSelection slowSel = new SlotSelection();
    final GroupAttention slowState;
    final Partial slowPartial;
    private float[] keyBuf = new float[0];
    private int[] shiftSources = new int[0];
    private float[] valueBuf = new float[0];
    /** A copy of the fast rows kept in step (the fast tier on a GPU), or null. */
    private HeadStore fastCopy;

    SplitHeadStore(TierPages fast, SplitRows slow, int sinks, int recent, int group) {
        this.fast = fast;
        this.slow = slow;
        this.sinks = sinks;
        this.recent = recent;
        this.headDim = fast.headDim();
        this.group = group;
        this.slowState = new GroupAttention(group, headDim);
        this.slowPartial = new Partial(group, headDim);
    }

    /**
     * Attends a subset of slow rows {@code [0, rows)} into {@link #slowPartial} for the scaled queries
     * of {@code state} (head-major), and returns the number of slow keys attended.
     */
    abstract int attendSlow(GroupAttention state, int rows);

    /** Slow-tier rows now. */
    int slowRows() {
        return slow.rows();
    }

    /** Fast-tier rows now. */
    int fastRows() {
        return fast.rows();
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public float maxMagnitude() {
        return fast.type().maxFinite();
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        int t = 0;
        // Sinks first.
        while (t < tokens && sinkRows < sinks) {
            fast.append(keys, keysOffset + t * rowStride, values, valuesOffset + t * rowStride, rowStride, 1);
            if (fastCopy != null) {
                fastCopy.append(keys, keysOffset + t * rowStride, values, valuesOffset + t * rowStride, rowStride, 1);
            }
            sinkRows++;
            count++;
            t++;
        }
        int rest = tokens - t;
        if (rest == 0) {
            return;
        }
        int window = fast.rows() - sinkRows;
        int leaving = Math.max(0, window + rest - recent);
        int oldLeaving = Math.min(leaving, window);
        // The oldest window rows go to the slow tier; the kept ones are shifted down.
        ensureRowBuffers();
        for (int j = 0; j < oldLeaving; j++) {
            fast.readKey(sinkRows + j, keyBuf, 0);
            fast.readValue(sinkRows + j, valueBuf, 0);
            slow.appendRow(keyBuf, valueBuf);
        }
        int newLeaving = leaving - oldLeaving;
        if (newLeaving > 0) {
            slow.append(keys, keysOffset + t * rowStride, values, valuesOffset + t * rowStride, rowStride, newLeaving);
        }
        if (oldLeaving > 0) {
            int kept = window - oldLeaving;
            if (shiftSources.length < kept) {
                shiftSources = new int[Math.max(kept, 2 * shiftSources.length)];
            }
            for (int j = 0; j < kept; j++) {
                shiftSources[j] = sinkRows + oldLeaving + j;
            }
            fast.compact(sinkRows, shiftSources, kept, sinkRows + kept);
            if (fastCopy != null) {
                fastCopy.compact(sinkRows, shiftSources, kept, sinkRows + kept);
            }
        }
        int stay = rest - newLeaving;
        if (stay > 0) {
            int off = t + newLeaving;
            fast.append(keys, keysOffset + off * rowStride, values, valuesOffset + off * rowStride, rowStride, stay);
            if (fastCopy != null) {
                fastCopy.append(
                        keys, keysOffset + off * rowStride, values, valuesOffset + off * rowStride, rowStride, stay);
            }
        }
        count += rest;
        slowRowsChanged(slow.rows() - leaving);
    }

    /** Slow rows {@code [firstChanged, slowRows())} are new or re-placed. */
    void slowRowsChanged(int firstChanged) {}

    private void ensureRowBuffers() {
        if (keyBuf.length < headDim) {
            keyBuf = new float[headDim];
            valueBuf = new float[headDim];
        }
    }

    /** Re-places the kept rows in both tiers (see the class comment). */
    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        if (from < 0 || moved < 0 || from + moved > newCount || newCount > count) {
            throw new IllegalArgumentException("compact(from " + from + ", moved " + moved + ", newCount " + newCount
                    + ") out of range for " + count + " slots");
        }
        int d = headDim;
        float[] k = new float[newCount * d];
        float[] v = new float[newCount * d];
        for (int i = 0; i < newCount; i++) {
            int src = i < from ? i : i < from + moved ? sources[i - from] : i;
            readKey(src, k, i * d);
            readValue(src, v, i * d);
        }
        fast.truncate(0);
        if (fastCopy != null) {
            fastCopy.compact(0, new int[0], 0, 0);
        }
        slow.truncate(0);
        count = 0;
        sinkRows = 0;
        append(k, 0, v, 0, d, newCount);
        slowRowsChanged(0);
    }

    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        if (selection.limit() > count) {
            throw new IllegalArgumentException(
                    "selection reaches slot " + (selection.limit() - 1) + " but the store holds " + count);
        }
        if (selection.isRange()) {
            attendRange(state, selection.from(), selection.to());
            return;
        }
        int n = selection.size();
        if (fastList.length < n) {
            fastList = new int[Math.max(n, fastList.length * 2)];
            slowList = new int[fastList.length];
        }
        int nf = 0;
        int ns = 0;
        boolean slowPrefix = true;
        int slowStart = count - (fast.rows() - sinkRows); // first slot of the recent window
        selection.reset();
        for (int s = selection.next(); s >= 0; s = selection.next()) {
            if (s < sinkRows) {
                fastList[nf++] = s;
            } else if (s >= slowStart) {
                fastList[nf++] = sinkRows + (s - slowStart);
            } else {
                int row = s - sinkRows;
                slowPrefix &= row == ns;
                slowList[ns++] = row;
            }
        }
        if (nf > 0) {
            fast.attend(state, fastSel.list(fastList, nf));
        }
        if (ns == 0) {
            return;
        }
        if (slowPrefix && selection.isRange()) {
            attendSlow(state, ns);
        } else {
            slowState.begin(state.queries(), 0, 1f);
            slow.attend(slowState, slowSel.list(slowList, ns));
            slowState.finish(slowPartial, 0);
        }
        state.mergePartial(slowPartial.out(), 0, slowPartial.lse(), 0);
    }

    /**
     * A range of slots (what the cache and {@link SplitLayerAttention} hand over) without visiting its
     * slots one by one: the sinks and recent-window part are at most two ranges of fast rows, the slow
     * part one range of slow rows, sparse when it starts at slow row 0.
     */
    private void attendRange(GroupAttention state, int from, int to) {
        if (from >= to) {
            return;
        }
        int slowStart = count - (fast.rows() - sinkRows); // first slot of the recent window
        // sinks: slots [from, min(to, sinkRows)) are fast rows of the same numbers
        int s0 = from;
        int s1 = Math.min(to, sinkRows);
        // window: slots [max(from, slowStart), to) are fast rows from sinkRows on
        int w0 = Math.max(from, slowStart);
        int f0 = sinkRows + (w0 - slowStart);
        int f1 = sinkRows + (to - slowStart);
        if (s1 > s0 && w0 < to && s1 == sinkRows && f0 == sinkRows) {
            fast.attend(state, fastSel.range(s0, f1)); // contiguous fast rows
        } else {
            if (s1 > s0) {
                fast.attend(state, fastSel.range(s0, s1));
            }
            if (w0 < to) {
                fast.attend(state, fastSel.range(f0, f1));
            }
        }
        // slow: slots [max(from, sinkRows), min(to, slowStart)) are slow rows from 0 on
        int m0 = Math.max(from, sinkRows) - sinkRows;
        int m1 = Math.min(to, slowStart) - sinkRows;
        if (m1 <= m0) {
            return;
        }
        if (m0 == 0) {
            attendSlow(state, m1);
        } else {
            slowState.begin(state.queries(), 0, 1f);
            slow.attend(slowState, slowSel.range(m0, m1));
            slowState.finish(slowPartial, 0);
        }
        state.mergePartial(slowPartial.out(), 0, slowPartial.lse(), 0);
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        locate(slot).readKey(row(slot), dst, offset);
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        locate(slot).readValue(row(slot), dst, offset);
    }

    private SplitRows locate(int slot) {
        if (slot < 0 || slot >= count) {
            throw new IndexOutOfBoundsException("slot " + slot + " out of range [0, " + count + ")");
        }
        return slot < sinkRows || slot >= count - (fast.rows() - sinkRows) ? fast : slow;
    }

    private int row(int slot) {
        int slowStart = count - (fast.rows() - sinkRows);
        if (slot < sinkRows) {
            return slot;
        }
        return slot >= slowStart ? sinkRows + (slot - slowStart) : slot - sinkRows;
    }

    @Override
    public long bytesHeld() {
        return fast.bytesHeld() + slow.bytesHeld() + (fastCopy == null ? 0 : fastCopy.bytesHeld());
    }

    /**
     * Keeps {@code copy} (empty, of the same head dimension) holding exactly this store's fast rows,
     * {@code [sinks…, recent window…]}, from now on: every fast-tier append and compaction is applied
     * to it too. The copy becomes this store's and is closed with it.
     *
     * @throws IllegalStateException if the store already holds slots or has a copy
     */
    void copyFastTo(HeadStore copy) {
        if (count > 0 || fastCopy != null) {
            throw new IllegalStateException("the fast-tier copy is attached to an empty store once");
        }
        fastCopy = java.util.Objects.requireNonNull(copy, "copy");
    }

    /** The copy of the fast rows, or null. */
    HeadStore fastCopy() {
        return fastCopy;
    }

    /**
     * Fast rows a token that sees the first {@code visible} slots sees: a prefix of the fast rows
     * (all sinks before the window, the window in slot order).
     */
    int fastRowsSeen(int visible) {
        int slowStart = count - (fast.rows() - sinkRows);
        return Math.min(visible, sinkRows) + Math.max(0, visible - slowStart);
    }

    /**
     * The slow part of attention for a token that sees the first {@code visible} slots: the sparse
     * partial over slow rows {@code [0, min(visible, window start) − sinks)} for the scaled queries of
     * {@code state} (as {@link #attend} merges it), or null when the token sees no slow row.
     */
    Partial slowPartial(GroupAttention state, int visible) {
        if (visible > count) {
            throw new IllegalArgumentException("visible " + visible + " slots, the store holds " + count);
        }
        int slowStart = count - (fast.rows() - sinkRows);
        int rows = Math.min(visible, slowStart) - sinkRows;
        if (rows <= 0) {
            return null;
        }
        attendSlow(state, rows);
        return slowPartial;
    }

    /** Bytes in the fast tier. */
    long fastBytes() {
        return fast.bytesHeld();
    }

    @Override
    public void close() {
        fast.close();
        slow.close();
        if (fastCopy != null) {
            fastCopy.close();
        }
        count = 0;
        Arrays.fill(fastList, 0);
    }
}
