package io.kvcache4j.retrieval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class FlatKeyIndexTest {

    /** Brute force: every key scored in double, best first, ties by lower slot. */
    static int[] bruteForce(float[] keys, int[] slots, int n, int d, float[] q, int k) {
        double[] s = new double[n];
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            double acc = 0;
            for (int j = 0; j < d; j++) {
                acc += (double) q[j] * keys[i * d + j];
            }
            s[i] = acc;
            order[i] = i;
        }
        Arrays.sort(order, Comparator.<Integer>comparingDouble(i -> -s[i]).thenComparingInt(i -> slots[i]));
        int[] top = new int[Math.min(k, n)];
        for (int i = 0; i < top.length; i++) {
            top[i] = slots[order[i]];
        }
        return top;
    }

    @Test
    void equalsBruteForceInFloat64OrderWithTiesBySlot() {
        long seed = Seeds.seed("flat equals brute force");
        SplittableRandom r = new SplittableRandom(seed);
        int d = 67; // not a multiple of the vector width
        int n = 3000;
        float[] keys = new float[n * d];
        int[] slots = new int[n];
        for (int i = 0; i < n; i++) {
            slots[i] = 5 * (n - i) + r.nextInt(5); // decreasing, so node order is not slot order
            if (i > 0 && r.nextInt(4) == 0) {
                System.arraycopy(keys, (i - 1) * d, keys, i * d, d); // exact ties
            } else {
                for (int j = 0; j < d; j++) {
                    keys[i * d + j] = (float) r.nextGaussian();
                }
            }
        }
        // near-ties that float rounding could misorder: keys differing in the last bits
        for (int i = 10; i < 100; i += 2) {
            for (int j = 0; j < d; j++) {
                keys[(i + 1) * d + j] = Math.nextUp(keys[i * d + j]);
            }
        }
        try (FlatKeyIndex index = new FlatKeyIndex(d)) {
            index.add(slots, keys, n);
            for (int t = 0; t < 50; t++) {
                float[] q = new float[d];
                for (int j = 0; j < d; j++) {
                    q[j] = (float) r.nextGaussian() * (t % 2 == 0 ? 1 : 1000);
                }
                int k = 1 + r.nextInt(200);
                KeyHits h = index.search(q, k);
                assertArrayEquals(bruteForce(keys, slots, n, d, q, k), h.slotsByRank(), "query " + t + " k " + k);
                assertEquals(n, h.scanned());
            }
            // k above the size returns every key
            assertEquals(n, index.search(new float[d], n + 10).count());
        }
    }

    @Test
    void batchesGiveTheSameResultsAsOneBatch() {
        long seed = Seeds.seed("flat batches");
        SyntheticAttention data = new SyntheticAttention(4000, 32, seed);
        float[] q = data.queries(20);
        try (FlatKeyIndex one = new FlatKeyIndex(32);
                FlatKeyIndex many = new FlatKeyIndex(32)) {
            one.add(data.slots, data.keys, data.n);
            for (int from = 0; from < data.n; from += 777) {
                int c = Math.min(777, data.n - from);
                many.add(
                        Arrays.copyOfRange(data.slots, from, from + c),
                        Arrays.copyOfRange(data.keys, from * 32, (from + c) * 32),
                        c);
            }
            assertEquals(data.n, many.size());
            for (int i = 0; i < 20; i++) {
                assertArrayEquals(
                        one.search(data.row(q, i), 50).slotsByRank(),
                        many.search(data.row(q, i), 50).slotsByRank());
            }
        }
    }

    @Test
    void bytesCountKeysSlotsScratchAndTheSlotBitmap() {
        try (FlatKeyIndex index = new FlatKeyIndex(16)) {
            assertEquals(8, index.bytes()); // an empty bitmap serializes to 8 bytes
            int n = 100;
            int[] slots = new int[n];
            for (int i = 0; i < n; i++) {
                slots[i] = i;
            }
            index.add(slots, new float[n * 16], n);
            int cap = 100; // first growth: max(n, 0 + 0 + 16)
            long bitmap = org.roaringbitmap.RoaringBitmap.bitmapOf(slots).serializedSizeInBytes();
            assertEquals(4L * cap * 16 + 4L * cap + 4L * cap + bitmap, index.bytes());
        }
    }
}
