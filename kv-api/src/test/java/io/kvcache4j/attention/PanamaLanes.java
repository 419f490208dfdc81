package io.kvcache4j.attention;

import jdk.incubator.vector.FloatVector;

/**
 * Array access to the lane-wise exp of {@link PanamaAttentionKernel} for tests. Touches the Vector
 * API, so callers first check that {@code jdk.incubator.vector} is in the boot layer.
 */
final class PanamaLanes {
    private PanamaLanes() {}

    static int lanes() {
        return FloatVector.SPECIES_PREFERRED.length();
    }

    /** {@code out[i] = exp(x[i] − 0)} by {@link PanamaAttentionKernel#expLanes}, {@code n} a multiple of {@link #lanes()}. */
    static void exp(float[] x, float[] out, int n) {
        for (int i = 0; i < n; i += lanes()) {
            PanamaAttentionKernel.expLanes(x, i, 0f, out, i);
        }
    }

    /** {@link PanamaAttentionKernel#laneSum} of the {@link #lanes()} floats at {@code v[off]}. */
    static float laneSum(float[] v, int off) {
        return PanamaAttentionKernel.laneSum(FloatVector.fromArray(FloatVector.SPECIES_PREFERRED, v, off));
    }
}
