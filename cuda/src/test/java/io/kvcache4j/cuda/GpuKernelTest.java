package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * Every kernel on the GPU against its CPU twin on random inputs ({@link DeviceCheck#correctness}):
 * relative error at most {@value DeviceCheck#TOLERANCE}. Skipped, with the reason in the log, where
 * {@link CudaBackends#available()} finds no device (CI).
 */
@EnabledIf(
        value = "gpuPresent",
        disabledReason = "no CUDA device: see the 'kvcache4j cuda' log line for the reason (CPU emulation tests cover"
                + " the kernels' algorithm)")
class GpuKernelTest {

    static boolean gpuPresent() {
        boolean present = CudaBackends.available().isPresent();
        if (!present) {
            System.err.println("GpuKernelTest skipped: " + CudaBackends.reason());
        }
        return present;
    }

    @Test
    void gpuMatchesTheCpuPath() {
        List<DeviceCheck.Outcome> outcomes =
                DeviceCheck.correctness(CudaBackends.available().orElseThrow().device(), System.out, 65_536);
        for (DeviceCheck.Outcome o : outcomes) {
            assertTrue(o.passed(), o.toString());
        }
    }
}
