package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;

/**
 * The storage kinds this module registers ({@code META-INF/services/io.kvcache4j.store.HeadStoreProvider}):
 * {@code cuda-f16} and {@code cuda-bf16}, exact rows on the GPU found by {@link
 * CudaBackends#available()}. Listing them never touches the driver; asking one for a factory without
 * a usable GPU throws {@link IllegalStateException} naming the reason (use {@code f16}, the CPU
 * storage, instead).
 */
public final class CudaProviders {
    private CudaProviders() {}

    abstract static class Base implements HeadStoreProvider {
        private final KvDType type;

        Base(KvDType type) {
            this.type = type;
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            CudaBackend backend = CudaBackends.available()
                    .orElseThrow(() -> new IllegalStateException("storage '" + name() + "' needs a CUDA GPU: "
                            + CudaBackends.reason() + "; use '" + type.name().toLowerCase(java.util.Locale.ROOT)
                            + "' for CPU attention"));
            return backend.factory(type, pageTokens);
        }
    }

    /** {@code cuda-f16}. */
    public static final class F16 extends Base {
        /** The provider instance {@link java.util.ServiceLoader} creates. */
        public F16() {
            super(KvDType.F16);
        }

        @Override
        public String name() {
            return "cuda-f16";
        }

        @Override
        public String description() {
            return "exact binary16 rows in GPU memory, flash-decoding attention on the device";
        }
    }

    /** {@code cuda-bf16}. */
    public static final class Bf16 extends Base {
        /** The provider instance {@link java.util.ServiceLoader} creates. */
        public Bf16() {
            super(KvDType.BF16);
        }

        @Override
        public String name() {
            return "cuda-bf16";
        }

        @Override
        public String description() {
            return "exact bfloat16 rows in GPU memory, flash-decoding attention on the device";
        }
    }
}
