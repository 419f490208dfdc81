package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.CacheAccess;
import io.kvcache4j.api.EvictionTracker;
import io.kvcache4j.api.HeadSlots;
import io.kvcache4j.api.ModelShape;

/**
 * Shared machinery of the trackers in this package: the head stores, a {@code long} column with
 * each slot's position (so protection checks never touch off-heap pages), sink and recent-window
 * protection, and allocation-free victim selection.
 *
 * <p>Scratch arrays grow (amortised doubling) only when a head holds more slots than ever before;
 * in steady state nothing is allocated. Not thread-safe: driven by the cache's thread.
 */
abstract class BaseTracker implements EvictionTracker {
    final CacheAccess cache;
    final ModelShape shape;
    final HeadSlots[][] heads;
    final int sinks;
    final int recent;
    /** Column id of the position column in every head (all heads register columns in one order). */
    final int posColumn;

    long[] keys = new long[64];
    int[] victims = new int[64];
    private long[] groupKeys = new long[0];
    private int[] groupMembers = new int[0];

    BaseTracker(CacheAccess cache, Budget budget) {
        this.cache = cache;
        this.shape = cache.shape();
        this.sinks = budget.sinkTokens();
        this.recent = budget.recentTokens();
        this.heads = new HeadSlots[shape.layers()][shape.kvHeads()];
        int col = -1;
        for (int l = 0; l < shape.layers(); l++) {
            for (int h = 0; h < shape.kvHeads(); h++) {
                heads[l][h] = cache.head(l, h);
                int c = heads[l][h].addLongColumn();
                if (col >= 0 && c != col) {
                    throw new IllegalStateException("heads assigned different column ids: " + col + " and " + c);
                }
                col = c;
            }
        }
        this.posColumn = col;
    }

    /** Registers a float column in every head and returns its (common) id. */
    final int addFloatColumn() {
        int col = -1;
        for (HeadSlots[] layer : heads) {
            for (HeadSlots h : layer) {
                int c = h.addFloatColumn();
                if (col >= 0 && c != col) {
                    throw new IllegalStateException("heads assigned different column ids: " + col + " and " + c);
                }
                col = c;
            }
        }
        return col;
    }

    /** Registers a long column in every head and returns its (common) id. */
    final int addLongColumn() {
        int col = -1;
        for (HeadSlots[] layer : heads) {
            for (HeadSlots h : layer) {
                int c = h.addLongColumn();
                if (col >= 0 && c != col) {
                    throw new IllegalStateException("heads assigned different column ids: " + col + " and " + c);
                }
                col = c;
            }
        }
        return col;
    }

    @Override
    public final void afterAppend(int layer, int tokens) {
        int first = cache.nextPosition(layer) - tokens;
        for (HeadSlots h : heads[layer]) {
            long[] pos = h.longColumn(posColumn);
            int base = h.count() - tokens;
            for (int t = 0; t < tokens; t++) {
                pos[base + t] = first + t;
            }
        }
        onAppend(layer, tokens);
    }

    /** Hook after the positions of the {@code tokens} newest slots of {@code layer} were recorded. */
    void onAppend(int layer, int tokens) {}

    /**
     * Whether the token at {@code position} is protected when the next appended position is {@code
     * next}: a sink ({@code position < sinks}) or in the recent window ({@code position >= next -
     * recent}).
     */
    final boolean isProtected(long position, int next) {
        return position < sinks || position >= (long) next - recent;
    }

    final void ensureScratch(int n) {
        if (keys.length < n) {
            keys = new long[Math.max(n, keys.length * 2)];
        }
        if (victims.length < n) {
            victims = new int[Math.max(n, victims.length * 2)];
        }
    }

    /**
     * Fills {@code keys[0..m)} with the selection keys ({@link Selection#key}) of {@code head}'s
     * unprotected slots scored by {@code score}, and returns {@code m}.
     */
    final int candidates(HeadSlots head, float[] score, int next) {
        int count = head.count();
        ensureScratch(count);
        long[] pos = head.longColumn(posColumn);
        int m = 0;
        for (int s = 0; s < count; s++) {
            if (!isProtected(pos[s], next)) {
                keys[m++] = Selection.key(Selection.sortable(score[s]), s);
            }
        }
        return m;
    }

    /**
     * Evicts from {@code head} the {@code n} candidates with the smallest keys among {@code
     * keys[0..m)} (keys made by {@link Selection#key}). With {@code keepOrder} the remaining slots keep
     * their order ({@link HeadSlots#evictAll}); otherwise each victim is replaced by the last slot
     * (O(1) per victim), which needs no pending tokens. On a store of granularity {@code g > 1} the
     * victims are {@code ⌊n/g⌋} whole groups instead (see {@link #selectGroups}).
     */
    final void evictSmallest(HeadSlots head, int m, int n, boolean keepOrder) {
        if (n <= 0) {
            return;
        }
        if (n > m) {
            throw new IllegalStateException("asked to evict " + n + " slots but only " + m + " are evictable");
        }
        int g = head.granularity();
        if (g > 1) {
            head.evictAll(victims, selectGroups(head.count(), g, m, n));
            return;
        }
        if (n == 1 && !keepOrder) {
            head.evict(Selection.slot(keys[Selection.argMin(keys, m)]));
            return;
        }
        selectVictims(m, n);
        evictSorted(head, n, keepOrder);
    }

    /**
     * Evicts the same {@code n} smallest-key candidates of {@code keys[0..m)} from every head of
     * {@code layerHeads}, which share one slot layout (a layer-wide selection), keeping order. On a
     * store of granularity {@code g > 1}: {@code ⌊n/g⌋} whole groups.
     */
    final void evictSmallestEverywhere(HeadSlots[] layerHeads, int m, int n) {
        if (n <= 0) {
            return;
        }
        HeadSlots first = layerHeads[0];
        int g = first.granularity();
        int count = g > 1 ? selectGroups(first.count(), g, m, n) : n;
        if (g == 1) {
            selectVictims(m, n);
        }
        for (HeadSlots h : layerHeads) {
            h.evictAll(victims, count);
        }
    }

    /** Puts the slots of the {@code n} smallest of {@code keys[0..m)} into {@code victims[0..n)}, sorted. */
    private void selectVictims(int m, int n) {
        Selection.selectSmallest(keys, m, n);
        for (int i = 0; i < n; i++) {
            victims[i] = Selection.slot(keys[i]);
        }
        Selection.sort(victims, n);
    }

    /**
     * Group selection for a store of granularity {@code g}: among the complete aligned groups {@code
     * [k·g, (k+1)·g)} of a head of {@code count} slots whose every slot is a candidate in {@code
     * keys[0..m)}, the {@code ⌊n/g⌋} groups whose highest member key is smallest (a group leaves only
     * if all its tokens rank low); their slots go to {@code victims}, sorted. Returns how many slots.
     */
    final int selectGroups(int count, int g, int m, int n) {
        int groups = count / g;
        ensureGroupScratch(groups);
        java.util.Arrays.fill(groupMembers, 0, groups, 0);
        for (int i = 0; i < m; i++) {
            int slot = Selection.slot(keys[i]);
            int k = slot / g;
            if (k >= groups) {
                continue;
            }
            long key = keys[i] & 0xFFFFFFFF00000000L;
            groupKeys[k] = groupMembers[k] == 0 ? key : Math.max(groupKeys[k], key);
            groupMembers[k]++;
        }
        int complete = 0;
        for (int k = 0; k < groups; k++) {
            if (groupMembers[k] == g) {
                keys[complete++] = groupKeys[k] | k;
            }
        }
        int take = Math.min(n / g, complete);
        Selection.selectSmallest(keys, complete, take);
        for (int i = 0; i < take; i++) {
            groupMembers[i] = Selection.slot(keys[i]);
        }
        Selection.sort(groupMembers, take);
        int v = 0;
        for (int i = 0; i < take; i++) {
            int start = groupMembers[i] * g;
            for (int j = 0; j < g; j++) {
                victims[v++] = start + j;
            }
        }
        return v;
    }

    private void ensureGroupScratch(int groups) {
        if (groupKeys.length < groups) {
            groupKeys = new long[Math.max(groups, groupKeys.length * 2)];
            groupMembers = new int[Math.max(groups, groupMembers.length * 2)];
        }
    }

    /**
     * Evicts {@code victims[0..n)} (strictly increasing slots) from {@code head}. On a store of
     * granularity {@code g > 1} only the complete aligned groups all of whose slots are victims leave.
     */
    final void evictSorted(HeadSlots head, int n, boolean keepOrder) {
        int g = head.granularity();
        if (g > 1) {
            int count = head.count();
            int kept = 0;
            for (int i = 0; i < n; ) {
                int slot = victims[i];
                if (slot % g == 0 && i + g <= n && victims[i + g - 1] == slot + g - 1 && slot + g <= count) {
                    for (int j = 0; j < g; j++) {
                        victims[kept++] = slot + j;
                    }
                    i += g;
                } else {
                    i++;
                }
            }
            head.evictAll(victims, kept);
            return;
        }
        if (keepOrder) {
            head.evictAll(victims, n);
        } else {
            // Highest slot first: the slot moved into each hole is beyond every remaining victim.
            for (int i = n - 1; i >= 0; i--) {
                head.evict(victims[i]);
            }
        }
    }

    /** Bytes of this tracker's scratch arrays. */
    long scratchBytes() {
        return 8L * keys.length + 4L * victims.length + 8L * groupKeys.length + 4L * groupMembers.length;
    }

    @Override
    public long stateBytes() {
        return scratchBytes();
    }
}
