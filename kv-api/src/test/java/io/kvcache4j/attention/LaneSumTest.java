package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvcache4j.FreshJvm;
import io.kvcache4j.TestSeeds;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The Vector API kernel's lane sum (full width first, then on the lower half and quarter) adds in
 * the order of the full-width butterfly, lane {@code i} with {@code i ^ 8}, then {@code i ^ 4},
 * {@code i ^ 2}, {@code i ^ 1}: checked bit for bit against that butterfly written out in scalar
 * code, on inputs whose sums depend on the order (magnitudes from 2^-30 to 2^30, both signs).
 */
class LaneSumTest {
    @Test
    void laneSumIsTheFullWidthButterfly() {
        assumeTrue(FreshJvm.hasVectorModule(), "jdk.incubator.vector is not in the boot layer");
        long seed = TestSeeds.seed("lane-sum");
        SplittableRandom r = TestSeeds.random(seed);
        int lanes = PanamaLanes.lanes();
        float[] v = new float[lanes];
        float[] w = new float[lanes];
        for (int round = 0; round < 20_000; round++) {
            for (int i = 0; i < lanes; i++) {
                v[i] = (float) Math.scalb(r.nextDouble(-1, 1), r.nextInt(-30, 31));
            }
            System.arraycopy(v, 0, w, 0, lanes);
            for (int step = lanes / 2; step >= 1; step /= 2) {
                for (int i = 0; i < step; i++) {
                    w[i] = w[i] + w[i ^ step];
                }
            }
            float got = PanamaLanes.laneSum(v, 0);
            assertEquals(
                    Float.floatToRawIntBits(w[0]),
                    Float.floatToRawIntBits(got),
                    "lanes " + java.util.Arrays.toString(v) + ": butterfly " + w[0] + ", laneSum " + got + ", seed="
                            + seed);
        }
    }
}
