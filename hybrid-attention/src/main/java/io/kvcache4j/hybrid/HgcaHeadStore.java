package io.kvcache4j.hybrid;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.SlotSelection;

/**
 * HGCA (hybrid GPU–CPU attention: dense attention over the recent KV on the device, sparse attention
 * over salient KV in host memory computed by CPU threads, merged by log-sum-exp) for one (layer, KV
 * head). The sinks and recent window are attended densely from the fast tier; for the slow tier every
 * query head of the group selects its own salient keys — logit within {@code threshold} of that
 * head's largest, at most {@code maxFraction} of the keys, best first — and attends them in its own
 * pass (HGCA's per-head sparsification), and the group's partial is merged into the dense pass.
 * Scoring reads every slow-tier key once per step, where the keys live (HGCA's point: the CPU's
 * memory bandwidth, not the bus). With an infinite threshold and {@code maxFraction = 1} the output
 * equals full attention up to float rounding.
 */
final class HgcaHeadStore extends SplitHeadStore {
    private final float threshold;
    private final double maxFraction;
    private final GroupAttention headState;
    private final SlotSelection selected = new SlotSelection();
    private final float[] one;
    private final float[] headOut;
    private float[] logits = new float[0];
    private float[] work = new float[0];
    private int[] rows = new int[0];
    private long slowAttended;
    private long slowScanned;

    HgcaHeadStore(TierPages fast, SplitRows slow, HgcaConfig config, int group) {
        super(fast, slow, config.sinkTokens(), config.recentTokens(), group);
        this.threshold = config.threshold();
        this.maxFraction = config.maxFraction();
        this.headState = new GroupAttention(1, headDim);
        this.one = new float[headDim];
        this.headOut = new float[headDim];
    }

    /** Slow-tier keys attended so far, summed over query heads. */
    long slowAttended() {
        return slowAttended;
    }

    /** Slow-tier keys scored so far. */
    long slowScanned() {
        return slowScanned;
    }

    @Override
    int attendSlow(GroupAttention state, int n) {
        int d = headDim;
        if (logits.length < group * n) {
            logits = new float[Math.max(group * n, logits.length * 2)];
        }
        if (work.length < n) {
            // grown geometrically: the slow tier gains a row at most decode steps
            work = new float[Math.max(n, work.length * 2)];
            rows = new int[work.length];
        }
        float[] q = state.queries();
        slow.scores(q, group, n, logits, n);
        slowScanned += n;
        int cap = (int) Math.max(1, Math.min(n, Math.ceil(maxFraction * n)));
        float[] out = slowPartial.out();
        float[] lse = slowPartial.lse();
        for (int h = 0; h < group; h++) {
            int base = h * n;
            float max = Float.NEGATIVE_INFINITY;
            for (int r = 0; r < n; r++) {
                max = Math.max(max, logits[base + r]);
            }
            float cut = max - threshold;
            int above = 0;
            for (int r = 0; r < n; r++) {
                if (logits[base + r] >= cut) {
                    above++;
                }
            }
            int m;
            if (above <= cap) {
                m = 0;
                for (int r = 0; r < n; r++) {
                    if (logits[base + r] >= cut) {
                        rows[m++] = r;
                    }
                }
            } else {
                System.arraycopy(logits, base, work, 0, n);
                float kth = FlatSelector.kthLargest(work, n, cap);
                int strictly = 0;
                for (int r = 0; r < n; r++) {
                    if (logits[base + r] > kth) {
                        strictly++;
                    }
                }
                int ties = cap - strictly;
                m = 0;
                for (int r = 0; r < n; r++) {
                    float s = logits[base + r];
                    if (s > kth || (s == kth && ties-- > 0)) {
                        rows[m++] = r;
                    }
                }
            }
            System.arraycopy(q, h * d, one, 0, d);
            headState.begin(one, 0, 1f);
            // the chosen rows' logits are this head's row of the group's scores above, the ones the
            // choice was made on: only values are read (on codes the same bits as scoring the head
            // alone; on exact f16 pages the group's scoring path may differ from one head's in the
            // last bit)
            slow.attendScored(headState, selected.list(rows, m), logits, base, n);
            headState.finish(headOut, 0);
            System.arraycopy(headOut, 0, out, h * d, d);
            lse[h] = headState.lse(0);
            slowAttended += m;
        }
        return n;
    }
}
