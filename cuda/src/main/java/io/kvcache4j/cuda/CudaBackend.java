package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Objects;

/**
 * A device the CUDA stores run on, found by {@link CudaBackends#available()} (a GPU through the
 * driver API) or made by {@link CudaBackends#emulated()} (the CPU twin of the kernels). Hands out
 * factories of device-resident exact stores whose layers attend with one decode launch plus one
 * combine launch ({@link CudaLayerAttention}).
 *
 * @param device the device
 * @param reason why this backend was chosen, for logs and reports
 */
public record CudaBackend(Device device, String reason) {
    public CudaBackend {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(reason, "reason");
    }

    /** A factory of {@link CudaHeadStore}s in {@code type} (f16 or bf16) with host mirror pages of {@code pageTokens}. */
    public HeadStoreFactory factory(KvDType type, int pageTokens) {
        return new CudaHeadStoreFactory(device, type, pageTokens, CudaLayerAttention.DEFAULT_CHUNK);
    }

    /**
     * A factory of {@link CudaKiviHeadStore}s of {@code config} (4 bits, f32 scales) with host pages
     * of {@code pageTokens}: KIVI groups on the device, attended on the packed codes.
     */
    public HeadStoreFactory kiviFactory(io.kvcache4j.quantization.KiviConfig config, int pageTokens) {
        return new CudaKiviHeadStoreFactory(device, config, pageTokens);
    }
}
