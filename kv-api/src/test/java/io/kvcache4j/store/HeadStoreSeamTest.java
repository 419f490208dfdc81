package io.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.GroupAttention;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * A store written outside the kernels (on-heap rows, its own scoring, the public online-softmax
 * protocol of {@link GroupAttention}) plugged in through {@link HeadStoreFactory}: the cache gives the
 * same attention as with its exact off-heap store. This is the seam quantizing codecs and tiers use.
 */
class HeadStoreSeamTest {

    /** Exact f32 rows on the heap; scores and weighted sums in plain Java. */
    static final class OnHeapStore implements HeadStore {
        private final int d;
        private final HeadStore.PendingCounter pending;
        private float[] keys = new float[0];
        private float[] values = new float[0];
        private int[] positions = new int[0];
        private int count;

        OnHeapStore(int d, HeadStore.PendingCounter pending) {
            this.d = d;
            this.pending = pending;
        }

        @Override
        public void append(float[] k, int kOff, float[] v, int vOff, int position) {
            if (count == positions.length) {
                int cap = Math.max(16, count * 2);
                keys = Arrays.copyOf(keys, cap * d);
                values = Arrays.copyOf(values, cap * d);
                positions = Arrays.copyOf(positions, cap);
            }
            System.arraycopy(k, kOff, keys, count * d, d);
            System.arraycopy(v, vOff, values, count * d, d);
            positions[count++] = position;
        }

        @Override
        public void attend(GroupAttention st, int visible) {
            int g = st.group();
            float[] logits = new float[g * GroupAttention.BLOCK];
            for (int j0 = 0; j0 < visible; j0 += GroupAttention.BLOCK) {
                int nb = Math.min(GroupAttention.BLOCK, visible - j0);
                for (int h = 0; h < g; h++) {
                    for (int j = 0; j < nb; j++) {
                        double s = 0;
                        for (int i = 0; i < d; i++) {
                            s += st.queries()[h * d + i] * keys[(j0 + j) * d + i];
                        }
                        logits[h * GroupAttention.BLOCK + j] = (float) s;
                    }
                }
                st.pushLogits(logits, nb, j0);
                for (int h = 0; h < g; h++) {
                    for (int j = 0; j < nb; j++) {
                        float w = logits[h * GroupAttention.BLOCK + j];
                        for (int i = 0; i < d; i++) {
                            st.accumulator()[h * d + i] += w * values[(j0 + j) * d + i];
                        }
                    }
                }
            }
        }

        @Override
        public int count() {
            return count;
        }

        @Override
        public int position(int slot) {
            return positions[slot];
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
        public int addFloatColumn() {
            throw new UnsupportedOperationException("this test store serves the full policy only");
        }

        @Override
        public int addLongColumn() {
            throw new UnsupportedOperationException("this test store serves the full policy only");
        }

        @Override
        public float[] floatColumn(int column) {
            throw new UnsupportedOperationException();
        }

        @Override
        public long[] longColumn(int column) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void evict(int slot) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void evictAll(int[] sortedSlots, int n) {
            throw new UnsupportedOperationException();
        }

        @Override
        public long bytesHeld() {
            return 0;
        }

        @Override
        public long metadataBytes() {
            return (long) positions.length * (4 + 8L * d);
        }

        @Override
        public void close() {}
    }

    @Test
    void aStoreFromOutsideTheKernelsGivesTheSameAttention() {
        long seed = TestSeeds.seed("head-store-seam");
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(2, 8, 2, 24);
        int tokens = 77;
        float[] k = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 1f);
        float[] v = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 1f);
        float[] q = TestSeeds.floats(r, tokens * shape.queryRowFloats(), 1f);
        float[] exact = new float[q.length];
        float[] onHeap = new float[q.length];
        try (KvCache a = KvCache.builder(shape).dtype(KvDType.F32).build();
                KvCache b = KvCache.builder(shape)
                        .dtype(KvDType.F32)
                        .store(spec -> new OnHeapStore(spec.headDim(), spec.pending()))
                        .build()) {
            for (int l = 0; l < 2; l++) {
                a.append(l, k, 0, v, 0, tokens);
                b.append(l, k, 0, v, 0, tokens);
                a.attend(l, q, 0, tokens, exact, 0);
                b.attend(l, q, 0, tokens, onHeap, 0);
                for (int i = 0; i < q.length; i++) {
                    assertEquals(exact[i], onHeap[i], 2e-6, "layer " + l + " element " + i + " seed=" + seed);
                }
            }
            assertEquals(0, b.bytesHeld(), "the on-heap store holds no off-heap bytes");
        }
    }
}
