package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.KeyScoring;
import io.kvcache4j.store.SlotSelection;
import java.util.Arrays;
import java.util.Objects;

/**
 * The attention pass shared by the codecs of this module, over any {@link SlotSelection}.
 *
 * <p>A store is cut into <em>key segments</em>: runs of at most {@link CodecKernel#BLOCK}
 * consecutive slots whose keys share one encoding context (a 16-token block of int8 keys, a
 * 16-token sub-block of one KIVI key group, 16 residual f16 rows). The pass walks the selected slots
 * in increasing order; when a slot falls in a new segment, the subclass scores the whole segment
 * for every query head ({@link #scoreSegment}, on its codes, with its scales folded into the query);
 * the logits of the selected slots are collected into blocks of 16, which go through {@link
 * GroupAttention#pushLogits} (online softmax, logit record by ordinal), after which the subclass
 * unpacks the value codes of those slots ({@link #loadValue}) and their per-token scales and zero
 * points are folded into the probabilities: {@code Σ_j p_j(s_j·code_j + z_j) = Σ_j (p_j s_j)·code_j
 * + Σ_j p_j z_j}. Both sums are {@link CodecKernel#accumulateValues}, for all the query heads of
 * the group at once (each unpacked value vector loaded once for all of them): the first a fused
 * multiply-add chain over {@code j} per channel, the second one scalar chain per channel group,
 * added after it.
 *
 * <p>Scratch lives in one object per thread, because kv-api's CPU layer source may attend distinct
 * chunks of one long store on several threads at once.
 */
abstract class PackedHeadStore implements KeyScoring {
    static final int BLOCK = CodecKernel.BLOCK;

    /** Elements per key or value row. */
    final int headDim;
    /** Floats per unpacked value row in the scratch (the row padded to whole code units). */
    final int valueStride;
    /** Channel groups per value row (one scale, and zero point if any, per token and group). */
    final int valueGroups;
    /** Channels per value group. */
    final int valueGroupChannels;
    /** Whether values have zero points. */
    final boolean valueZeros;

    final CodecKernel kernel;
    boolean closed;

    PackedHeadStore(int headDim, int valueStride, int valueGroupChannels, boolean valueZeros, CodecKernel kernel) {
        this.headDim = headDim;
        this.valueStride = valueStride;
        this.valueGroupChannels = valueGroupChannels;
        this.valueGroups = (headDim + valueGroupChannels - 1) / valueGroupChannels;
        this.valueZeros = valueZeros;
        this.kernel = Objects.requireNonNull(kernel, "kernel");
    }

    /** The first slot of the key segment holding {@code slot}. */
    abstract int segmentStart(int slot);

    /** Slots in the key segment starting at {@code start} ({@code 1 ..} {@link #BLOCK}). */
    abstract int segmentLength(int start);

    /**
     * Writes the logits of the segment at {@code start} for every query head of {@code st}, already
     * scaled ({@link GroupAttention#queries()}), into {@code out[h·BLOCK + j]} for slot {@code start +
     * j}. {@code s} is this pass's scratch (the subclass may cache per-pass folded queries in it).
     */
    abstract void scoreSegment(GroupAttention st, Scratch s, int start, int len, float[] out);

    /**
     * Unpacks the value of {@code slot} into {@code v[vOff .. vOff + headDim)} (codes, or exact values
     * with scale 1 and zero point 0) and its per-group scales and zero points into {@code scales[sOff
     * ..]} and {@code zeros[sOff ..]} ({@link #valueGroups} each; zeros only if {@link #valueZeros}).
     */
    abstract void loadValue(int slot, float[] v, int vOff, float[] scales, float[] zeros, int sOff);

    /**
     * {@link #loadValue} for {@code slots[0 .. nb)}, into row {@code j} of {@code v} (stride {@link
     * #valueStride}) and of {@code scales} and {@code zeros} (stride {@link #valueGroups}); a subclass
     * may load runs of consecutive slots at once.
     */
    void loadValues(int[] slots, int nb, float[] v, float[] scales, float[] zeros) {
        for (int j = 0; j < nb; j++) {
            loadValue(slots[j], v, j * valueStride, scales, zeros, j * valueGroups);
        }
    }

    @Override
    public void attend(GroupAttention st, SlotSelection selection) {
        checkPass(st, selection);
        Scratch s = Scratch.get(st.group(), headDim, valueStride, valueGroups);
        s.beginPass();
        int g = st.group();
        int segStart = -1;
        int segEnd = -1;
        int ordinal = 0;
        int n = 0;
        selection.reset();
        for (int slot = selection.next(); slot >= 0; slot = selection.next()) {
            if (slot >= segEnd) {
                segStart = segmentStart(slot);
                segEnd = segStart + segmentLength(segStart);
                scoreSegment(st, s, segStart, segEnd - segStart, s.segLogits);
            }
            for (int h = 0; h < g; h++) {
                s.pending[h * BLOCK + n] = s.segLogits[h * BLOCK + slot - segStart];
            }
            s.pendingSlots[n++] = slot;
            if (n == BLOCK) {
                flush(st, s, n, ordinal);
                ordinal += n;
                n = 0;
            }
        }
        if (n > 0) {
            flush(st, s, n, ordinal);
        }
    }

    /** Segment by segment from slot 0, with {@link #scoreSegment}: the logits {@link #attend} pushes. */
    @Override
    public void scoreKeys(GroupAttention st, int slots, float[] out, int outStride) {
        ensureOpen();
        KeyScoring.check(st, slots, count(), headDim, out, outStride);
        int g = st.group();
        Scratch s = Scratch.get(g, headDim, valueStride, valueGroups);
        s.beginPass();
        for (int start = 0; start < slots; ) {
            int len = segmentLength(start);
            scoreSegment(st, s, start, len, s.segLogits);
            int n = Math.min(len, slots - start);
            for (int h = 0; h < g; h++) {
                System.arraycopy(s.segLogits, h * BLOCK, out, h * outStride + start, n);
            }
            start += len;
        }
    }

    /** {@link #attend}'s loop with the logits read from {@code logits} instead of scored. */
    @Override
    public void attendScored(GroupAttention st, SlotSelection selection, float[] logits, int offset, int stride) {
        checkPass(st, selection);
        int g = st.group();
        KeyScoring.checkScoredLogits(selection, g, logits, offset, stride);
        Scratch s = Scratch.get(g, headDim, valueStride, valueGroups);
        s.beginPass();
        int ordinal = 0;
        int n = 0;
        selection.reset();
        for (int slot = selection.next(); slot >= 0; slot = selection.next()) {
            for (int h = 0; h < g; h++) {
                s.pending[h * BLOCK + n] = logits[offset + h * stride + slot];
            }
            s.pendingSlots[n++] = slot;
            if (n == BLOCK) {
                flush(st, s, n, ordinal);
                ordinal += n;
                n = 0;
            }
        }
        if (n > 0) {
            flush(st, s, n, ordinal);
        }
    }

    private void flush(GroupAttention st, Scratch s, int nb, int ordinal) {
        st.pushLogits(s.pending, nb, ordinal);
        loadValues(s.pendingSlots, nb, s.values, s.scales, s.zeros);
        kernel.accumulateValues(
                st.accumulator(),
                st.group(),
                headDim,
                valueGroupChannels,
                s.values,
                valueStride,
                s.pending,
                s.scales,
                valueZeros ? s.zeros : null,
                nb);
    }

    /** Throws unless the store is open, holds the selection's slots and rows of the state's head dimension. */
    private void checkPass(GroupAttention st, SlotSelection selection) {
        ensureOpen();
        if (selection.limit() > count()) {
            throw new IllegalArgumentException(
                    "selection reaches slot " + (selection.limit() - 1) + " but the store holds " + count());
        }
        if (st.headDim() != headDim) {
            throw new IllegalArgumentException(
                    "attention state has headDim " + st.headDim() + ", the store " + headDim);
        }
    }

    void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("store is closed");
        }
    }

    void checkSlot(int slot) {
        ensureOpen();
        if (slot < 0 || slot >= count()) {
            throw new IndexOutOfBoundsException("slot " + slot + " out of range [0, " + count() + ")");
        }
    }

    /** The scratch of one attention pass; one per thread, grown on demand, never shrunk. */
    static final class Scratch {
        private static final ThreadLocal<Scratch> LOCAL = ThreadLocal.withInitial(Scratch::new);

        float[] segLogits = new float[0];
        float[] pending = new float[0];
        int[] pendingSlots = new int[BLOCK];
        float[] values = new float[0];
        float[] scales = new float[0];
        float[] zeros = new float[0];
        /** Unpacked key codes of one segment, dimension-major {@code [channel][BLOCK]}. */
        float[] keys = new float[0];
        /** One decoded row. */
        float[] row = new float[0];
        /** Folded queries {@code [group][headDim]} and biases {@code [group]}, valid for {@link #foldedFor}. */
        float[] folded = new float[0];

        float[] bias = new float[0];
        /** What {@link #folded} was computed for (a key group index), or -1. */
        long foldedFor = -1;

        static Scratch get(int group, int headDim, int valueStride, int valueGroups) {
            Scratch s = LOCAL.get();
            s.ensure(group, headDim, valueStride, valueGroups);
            return s;
        }

        void beginPass() {
            foldedFor = -1;
        }

        private void ensure(int group, int headDim, int valueStride, int valueGroups) {
            segLogits = atLeast(segLogits, group * BLOCK);
            pending = atLeast(pending, group * BLOCK);
            values = atLeast(values, BLOCK * valueStride);
            scales = atLeast(scales, BLOCK * valueGroups);
            zeros = atLeast(zeros, BLOCK * valueGroups);
            // keys: channels padded up to a multiple of 4 (the widest code unit holds 4 channels)
            keys = atLeast(keys, (headDim + 3 & -4) * BLOCK);
            row = atLeast(row, headDim);
            folded = atLeast(folded, group * headDim);
            bias = atLeast(bias, group);
        }

        private static float[] atLeast(float[] a, int n) {
            return a.length >= n ? a : Arrays.copyOf(a, n);
        }
    }
}
