package io.kvcache4j.eval.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/**
 * The build runs the kernel tests with and without {@code jdk.incubator.vector} and tells each run
 * which weight kernel must be active, so a fallback can never take over silently.
 */
class WeightKernelSelectionTest {
    @Test
    void activeKernelIsTheExpectedOne() {
        String expected = System.getProperty("kvcache4j.expectKernel");
        assumeTrue(expected != null, "kvcache4j.expectKernel not set (run through Maven)");
        assumeTrue(
                !(expected.equals("panama") && WeightKernels.reason().contains("lanes; need 8 or 16")),
                "this CPU's preferred vector width has no Panama weight kernel: " + WeightKernels.reason());
        assertEquals(expected, WeightKernels.activeName(), "active weight kernel; reason: " + WeightKernels.reason());
    }

    @Test
    void scalarTwinIsAlwaysAvailable() {
        assertEquals("scalar", WeightKernels.scalar().name());
    }
}
