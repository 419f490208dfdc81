package io.kvcache4j.eviction;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class SelectionTest {

    @Test
    void selectSmallestMatchesASortOnRandomAndAdversarialInputs() {
        long seed = TestSeeds.seed("select-smallest");
        SplittableRandom r = TestSeeds.random(seed);
        for (int trial = 0; trial < 400; trial++) {
            int n = 1 + r.nextInt(trial < 200 ? 40 : 3000);
            int k = r.nextInt(n + 1);
            long[] a = new long[n];
            int kind = trial % 4;
            for (int i = 0; i < n; i++) {
                int score = switch (kind) {
                    case 0 -> r.nextInt();
                    case 1 -> i; // ascending
                    case 2 -> n - i; // descending
                    default -> r.nextInt(3); // many equal scores
                };
                a[i] = Selection.key(score, i);
            }
            long[] sorted = a.clone();
            Arrays.sort(sorted);
            Selection.selectSmallest(a, n, k);
            long[] firstK = Arrays.copyOf(a, k);
            Arrays.sort(firstK);
            assertArrayEquals(Arrays.copyOf(sorted, k), firstK, "n=" + n + " k=" + k + " seed=" + seed);
        }
    }

    @Test
    void sortAndKeysOrderLikeTheirValues() {
        long seed = TestSeeds.seed("heap-sort");
        SplittableRandom r = TestSeeds.random(seed);
        for (int trial = 0; trial < 100; trial++) {
            int n = r.nextInt(500);
            int[] a = new int[n + 3];
            for (int i = 0; i < a.length; i++) {
                a[i] = r.nextInt(1000) - 500;
            }
            int[] expected = a.clone();
            Arrays.sort(expected, 0, n);
            Selection.sort(a, n);
            assertArrayEquals(expected, a, "seed=" + seed);
        }
        float[] values = {Float.NEGATIVE_INFINITY, -3.5f, -0f, 0f, 1e-30f, 2f, Float.POSITIVE_INFINITY};
        for (int i = 1; i < values.length; i++) {
            assertTrue(Selection.sortable(values[i - 1]) < Selection.sortable(values[i]), values[i] + "");
        }
        assertEquals(7, Selection.slot(Selection.key(-12, 7)));
        assertTrue(Selection.key(-1, 5) < Selection.key(0, 0));
        assertTrue(Selection.key(3, 1) < Selection.key(3, 2));
    }
}
