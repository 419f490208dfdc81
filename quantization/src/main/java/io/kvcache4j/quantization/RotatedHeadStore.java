package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.SlotSelection;

/**
 * A {@link HeadStore} that keeps another store's rows in a rotated basis ({@link HadamardRotation}):
 * keys and values are rotated on the way in and back on the way out ({@link #readKey}, {@link
 * #readValue}).
 *
 * <p><b>Attention.</b> {@code (R·q)·(R·k) = q·k}, so the inner store scores the rotated keys against
 * the rotated queries. Its weighted sums are rotated values, {@code Σ p·R·v = R·Σ p·v}; the
 * accumulator is linear and online-softmax rescales are scalars per head, so {@link #attend} rotates
 * the pass's queries and accumulator into the rotated basis, lets the inner store attend, and rotates
 * the accumulator back and restores the queries' exact bits (from a copy) afterwards. Exact up to
 * float rounding.
 *
 * <p><b>Magnitude.</b> A rotated coordinate can reach {@code ‖x‖₂ <= √d·max|x_i|}, so the store
 * accepts inputs up to the inner store's limit divided by {@code √d}.
 *
 * <p>Bytes are the inner store's; no native memory of its own. Not thread-safe.
 */
final class RotatedHeadStore implements HeadStore {
    /** Rows rotated per call to the inner store's append. */
    private static final int APPEND_CHUNK = 64;

    private final HeadStore inner;
    private final HadamardRotation rotation;
    private final int d;
    private final float[] keys;
    private final float[] values;
    private float[] savedQueries = new float[0];

    RotatedHeadStore(HeadStore inner, HadamardRotation rotation) {
        this.inner = inner;
        this.rotation = rotation;
        this.d = rotation.dim();
        this.keys = new float[APPEND_CHUNK * d];
        this.values = new float[APPEND_CHUNK * d];
    }

    @Override
    public int count() {
        return inner.count();
    }

    @Override
    public int granularity() {
        return inner.granularity();
    }

    @Override
    public float maxMagnitude() {
        return (float) (inner.maxMagnitude() / Math.sqrt(d));
    }

    @Override
    public void append(float[] k, int kOff, float[] v, int vOff, int rowStride, int tokens) {
        for (int done = 0; done < tokens; ) {
            int n = Math.min(APPEND_CHUNK, tokens - done);
            for (int t = 0; t < n; t++) {
                int src = (done + t) * rowStride;
                System.arraycopy(k, kOff + src, keys, t * d, d);
                System.arraycopy(v, vOff + src, values, t * d, d);
                rotation.rotate(keys, t * d);
                rotation.rotate(values, t * d);
            }
            inner.append(keys, 0, values, 0, d, n);
            done += n;
        }
    }

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        inner.compact(from, sources, moved, newCount);
    }

    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        float[] q = state.queries();
        float[] acc = state.accumulator();
        int heads = state.group();
        if (savedQueries.length < q.length) {
            savedQueries = new float[q.length];
        }
        System.arraycopy(q, 0, savedQueries, 0, q.length);
        for (int h = 0; h < heads; h++) {
            rotation.rotate(q, h * d);
            if (!zero(acc, h * d)) {
                rotation.rotate(acc, h * d);
            }
        }
        try {
            inner.attend(state, selection);
        } finally {
            System.arraycopy(savedQueries, 0, q, 0, q.length);
            for (int h = 0; h < heads; h++) {
                rotation.unrotate(acc, h * d);
            }
        }
    }

    private boolean zero(float[] x, int off) {
        for (int i = 0; i < d; i++) {
            if (x[off + i] != 0f) {
                return false;
            }
        }
        return true;
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        inner.readKey(slot, dst, offset);
        rotation.unrotate(dst, offset);
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        inner.readValue(slot, dst, offset);
        rotation.unrotate(dst, offset);
    }

    @Override
    public long bytesHeld() {
        return inner.bytesHeld();
    }

    @Override
    public void close() {
        inner.close();
    }
}
