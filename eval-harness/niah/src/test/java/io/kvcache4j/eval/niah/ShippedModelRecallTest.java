package io.kvcache4j.eval.niah;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The shipped-model recall measurement on a short prompt: the exact index finds the exact top k of
 * every recorded query (so recording, slot numbering and ground truth agree), and the graph index's
 * recall is a fraction.
 */
class ShippedModelRecallTest {
    @Test
    void exactIndexHasFullRecallOnRecordedKeysAndQueries() throws Exception {
        Map<String, Double> r = ShippedModelRecall.run(
                512, 0.5, 16, 4, new String[] {"flat", "roar"}, new int[] {32}, 1, Map.of(), 128, System.out);
        assertEquals(1.0, r.get("flat@16"), 1e-12, r.toString());
        double roar = r.get("roar@32");
        assertTrue(roar > 0 && roar <= 1, r.toString());
    }
}
