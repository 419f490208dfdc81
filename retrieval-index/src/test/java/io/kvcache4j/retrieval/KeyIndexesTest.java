package io.kvcache4j.retrieval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.store.SlotSelection;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class KeyIndexesTest {

    @Test
    void providersAreFoundByName() {
        assertEquals(List.of("flat", "hnsw", "roar"), KeyIndexes.names());
        assertEquals("hnsw", KeyIndexes.provider("HNSW").name());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KeyIndexes.provider("ivf"));
        assertEquals("unknown key index 'ivf'; installed: flat, hnsw, roar", e.getMessage());
    }

    @Test
    void optionsAreChecked() {
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class, () -> KeyIndexes.create("hnsw", 8, KeyIndexOptions.parse("m=1")));
        assertEquals("option m=1 out of range [2, 256]", e.getMessage());
        e = assertThrows(
                IllegalArgumentException.class, () -> KeyIndexes.create("flat", 8, KeyIndexOptions.of("ef", 10)));
        assertEquals("unknown option 'ef' for key index flat; known: []", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> KeyIndexOptions.parse("ef=ten"));
        assertEquals("option 'ef=ten' needs an integer value, was 'ten'", e.getMessage());
        e = assertThrows(
                IllegalArgumentException.class, () -> KeyIndexes.create("roar", 0, KeyIndexOptions.defaults()));
        assertEquals("dimension 0 out of range [1, 65536]", e.getMessage());
        assertEquals("ef=10,m=8", KeyIndexOptions.parse("m=8, ef=10").toString());
    }

    @ParameterizedTest
    @ValueSource(strings = {"flat", "hnsw", "roar"})
    void badInputIsRejectedWithValueAndRange(String name) {
        try (KeyIndex index = KeyIndexes.create(name, 4, KeyIndexOptions.defaults())) {
            index.add(new int[] {7, 3}, new float[] {1, 0, 0, 0, 0, 1, 0, 0}, 2);
            assertMessage("k 0 out of range [1, 2147483647]", () -> index.search(new float[4], 0));
            assertMessage("ef 0 out of range [1, 2147483647]", () -> index.search(new float[4], 1, 0));
            assertMessage(
                    "query length 3 out of range [4, 4] (the index dimension)", () -> index.search(new float[3], 1));
            assertMessage(
                    "query component 2 is NaN; components must be finite",
                    () -> index.search(new float[] {0, 0, Float.NaN, 0}, 1));
            assertMessage(
                    "keys row 1 component 3 is Infinity; components must be finite",
                    () -> index.add(new int[] {10, 11}, new float[] {0, 0, 0, 0, 0, 0, 0, Float.POSITIVE_INFINITY}, 2));
            assertMessage(
                    "slot -1 at index 0 out of range [0, 2147483647]",
                    () -> index.add(new int[] {-1}, new float[4], 1));
            assertMessage("slot 3 at index 1 is already indexed", () -> index.add(new int[] {9, 3}, new float[8], 2));
            assertMessage("slot 9 at index 1 is already indexed", () -> index.add(new int[] {9, 9}, new float[8], 2));
            assertMessage("count 3 out of range [0, 2]", () -> index.add(new int[] {20, 21}, new float[12], 3));
            assertMessage(
                    "keys array length 7 out of range [8, ...] for 2 rows of 4",
                    () -> index.add(new int[] {20, 21}, new float[7], 2));
            assertEquals(2, index.size(), "rejected batches add nothing");

            KeyHits h = index.search(new float[] {0, 1, 0, 0}, 5);
            assertEquals(2, h.count());
            assertEquals(3, h.slot(0));
            SlotSelection sel = h.select(new SlotSelection());
            assertEquals(2, sel.size());
            assertEquals(3, sel.next());
            assertEquals(7, sel.next());
            assertTrue(h.toBitmap().contains(7));
            index.close();
            assertThrows(IllegalStateException.class, index::size);
        }
    }

    private static void assertMessage(String expected, Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertEquals(expected, e.getMessage());
    }
}
