package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/**
 * The build runs the test suite twice, with and without {@code jdk.incubator.vector}, and tells
 * each run which kernel must be active: a fallback can never take over silently.
 */
class KernelSelectionTest {
    @Test
    void activeKernelIsTheExpectedOne() {
        String expected = System.getProperty("kvcache4j.expectKernel");
        assumeTrue(expected != null, "kvcache4j.expectKernel not set (run through Maven)");
        assertEquals(expected, AttentionKernels.get().name(), "active kernel; reason: " + AttentionKernels.reason());
    }

    @Test
    void scalarTwinIsAlwaysAvailable() {
        assertEquals("scalar", AttentionKernels.scalar().name());
    }
}
