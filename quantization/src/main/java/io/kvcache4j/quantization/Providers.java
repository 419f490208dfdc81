package io.kvcache4j.quantization;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;
import io.kvcache4j.store.HeadStores;
import java.util.Locale;
import java.util.Map;

/**
 * The storage kinds of this module, registered by name in {@code
 * META-INF/services/io.kvcache4j.store.HeadStoreProvider}: {@code int8}, {@code int4} and {@code
 * int2}, the KIVI ones at the paper's defaults ({@link KiviConfig#defaults}) or at options given with
 * the name ({@link Kivi}).
 */
public final class Providers {
    private Providers() {}

    /** {@code int8}: per-token symmetric int8 keys and values ({@link Int8HeadStore}). */
    public static final class Int8 implements HeadStoreProvider {
        @Override
        public String name() {
            return "int8";
        }

        @Override
        public String description() {
            return "per-token symmetric int8 keys and values, one f32 scale per row";
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            return new Int8Config(pageTokens).factory();
        }
    }

    /**
     * KIVI storage ({@link KiviHeadStore}) at a configuration. Options (see {@link HeadStores#provider}):
     * {@code g} tokens per key group, {@code r} residual tokens, {@code vg} channels per value group,
     * {@code scales} {@code f16} or {@code f32}; e.g. {@code int4:g=64:r=0}. Unnamed options keep the
     * defaults ({@link KiviConfig#defaults}).
     */
    public static class Kivi implements HeadStoreProvider {
        private final String name;
        private final KiviConfig config;

        Kivi(String name, KiviConfig config) {
            this.name = name;
            this.config = config;
        }

        /** The configuration of the stores this provider makes. */
        public KiviConfig config() {
            return config;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public String description() {
            KiviConfig c = config;
            return "KIVI " + c.bits() + "-bit: keys per channel over groups of " + c.groupTokens()
                    + " tokens, values per token over groups of " + c.valueGroupChannels() + " channels, "
                    + c.scaleType().name().toLowerCase(Locale.ROOT) + " scales and zero points, newest "
                    + c.residualTokens() + " tokens in f16";
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            return config.factory(pageTokens);
        }

        @Override
        public HeadStoreProvider withOptions(String name, Map<String, String> options) {
            KiviConfig c = config;
            int g = c.groupTokens();
            int r = c.residualTokens();
            int vg = c.valueGroupChannels();
            KvDType scales = c.scaleType();
            for (Map.Entry<String, String> e : options.entrySet()) {
                String v = e.getValue();
                switch (e.getKey()) {
                    case "g" -> g = integer(name, "g", v);
                    case "r" -> r = integer(name, "r", v);
                    case "vg" -> vg = integer(name, "vg", v);
                    case "scales" ->
                        scales = switch (v) {
                            case "f16" -> KvDType.F16;
                            case "f32" -> KvDType.F32;
                            default ->
                                throw new IllegalArgumentException(
                                        "storage '" + name + "': scales must be f16 or f32, was " + v);
                        };
                    default ->
                        throw new IllegalArgumentException("storage '" + name + "': unknown option '" + e.getKey()
                                + "'; options: g, r, vg, scales");
                }
            }
            try {
                return new Kivi(name, new KiviConfig(c.bits(), g, r, vg, scales));
            } catch (IllegalArgumentException ex) {
                throw new IllegalArgumentException("storage '" + name + "': " + ex.getMessage(), ex);
            }
        }

        private static int integer(String name, String key, String v) {
            try {
                return Integer.parseInt(v);
            } catch (NumberFormatException ex) {
                throw new IllegalArgumentException(
                        "storage '" + name + "': option " + key + " must be an integer, was '" + v + "'", ex);
            }
        }
    }

    /** {@code int4}: KIVI at 4 bits, the paper's defaults. */
    public static final class Kivi4 extends Kivi {
        public Kivi4() {
            super("int4", KiviConfig.defaults(4));
        }
    }

    /** {@code int2}: KIVI at 2 bits, the paper's defaults. */
    public static final class Kivi2 extends Kivi {
        public Kivi2() {
            super("int2", KiviConfig.defaults(2));
        }
    }
}
