package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.store.HeadStores;
import org.junit.jupiter.api.Test;

/** Discovery: the providers are listed without a driver, and fail cleanly without one. */
class CudaBackendsTest {

    @Test
    void providersAreRegisteredByName() {
        assertTrue(HeadStores.names().contains("cuda-f16"), HeadStores.names().toString());
        assertTrue(HeadStores.names().contains("cuda-bf16"));
    }

    @Test
    void withoutADriverTheProviderSaysWhy() {
        System.err.println("CudaBackends: " + CudaBackends.reason());
        assertFalse(CudaBackends.reason().isBlank());
        if (CudaBackends.available().isEmpty()) {
            IllegalStateException e =
                    assertThrows(IllegalStateException.class, () -> HeadStores.factory("cuda-f16", 16));
            assertTrue(e.getMessage().contains("needs a CUDA GPU"), e.getMessage());
            assertTrue(e.getMessage().contains(CudaBackends.reason()), e.getMessage());
        } else {
            assertTrue(HeadStores.factory("cuda-f16", 16).name().equals("cuda-f16"));
        }
    }

    @Test
    void factoryOrCpuFallsBackToTheCpuStorage() {
        var f = CudaBackends.factoryOrCpu(io.kvcache4j.api.KvDType.F16, 16);
        String want = CudaBackends.available().isPresent() ? "cuda-f16" : "f16";
        org.junit.jupiter.api.Assertions.assertEquals(want, f.name());
        org.junit.jupiter.api.Assertions.assertEquals(
                "f32",
                CudaBackends.factoryOrCpu(io.kvcache4j.api.KvDType.F32, 16).name());
    }
}
