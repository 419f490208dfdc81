package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.quantization.KiviConfig;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;

/**
 * The storage kinds this module registers ({@code META-INF/services/io.kvcache4j.store.HeadStoreProvider}):
 * {@code cuda-f16} and {@code cuda-bf16}, exact rows on the GPU found by {@link
 * CudaBackends#available()}, and {@code cuda-int4}, KIVI 4-bit groups on the GPU (options {@code g},
 * {@code r}, {@code vg} as for {@code int4}; scales are f32, what the kernel reads). Listing them never touches the driver; asking one for a factory without
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

    /** {@code cuda-int4}: KIVI 4-bit groups on the GPU, attention on the packed codes. */
    public static final class Int4 implements HeadStoreProvider {
        private final KiviConfig config;

        /** The provider instance {@link java.util.ServiceLoader} creates: KIVI's defaults with f32 scales. */
        public Int4() {
            this(withF32(KiviConfig.defaults(4)));
        }

        private Int4(KiviConfig config) {
            this.config = config;
        }

        private static KiviConfig withF32(KiviConfig c) {
            return new KiviConfig(c.bits(), c.groupTokens(), c.residualTokens(), c.valueGroupChannels(), KvDType.F32);
        }

        /** The configuration of the stores. */
        public KiviConfig config() {
            return config;
        }

        @Override
        public String name() {
            return "cuda-int4";
        }

        @Override
        public String description() {
            return "KIVI 4-bit groups in GPU memory (keys per channel over " + config.groupTokens()
                    + " tokens, values per token over " + config.valueGroupChannels()
                    + " channels, f32 scales), attention on the packed codes; newest " + config.residualTokens()
                    + " tokens exact f16 on the device";
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            CudaBackend backend = CudaBackends.available()
                    .orElseThrow(() -> new IllegalStateException("storage '" + name() + "' needs a CUDA GPU: "
                            + CudaBackends.reason() + "; use 'int4' for CPU attention"));
            return backend.kiviFactory(config, pageTokens);
        }

        @Override
        public HeadStoreProvider withOptions(String name, java.util.Map<String, String> options) {
            int g = config.groupTokens();
            int r = config.residualTokens();
            int vg = config.valueGroupChannels();
            for (java.util.Map.Entry<String, String> e : options.entrySet()) {
                String key = e.getKey();
                if (!key.equals("g") && !key.equals("r") && !key.equals("vg")) {
                    throw new IllegalArgumentException("storage '" + name + "': unknown option '" + key
                            + "'; options: g, r, vg (scales are f32, what the kernel reads)");
                }
                int v;
                try {
                    v = Integer.parseInt(e.getValue());
                } catch (NumberFormatException ex) {
                    throw new IllegalArgumentException(
                            "storage '" + name + "': option " + key + " must be an integer, was '" + e.getValue() + "'",
                            ex);
                }
                switch (key) {
                    case "g" -> g = v;
                    case "r" -> r = v;
                    default -> vg = v;
                }
            }
            if (g % 32 != 0) {
                throw new IllegalArgumentException(
                        "storage '" + name + "': g must be a multiple of 32 for the int4 kernel, was " + g);
            }
            try {
                return new Int4(new KiviConfig(4, g, r, vg, KvDType.F32));
            } catch (IllegalArgumentException ex) {
                throw new IllegalArgumentException("storage '" + name + "': " + ex.getMessage(), ex);
            }
        }
    }
}
