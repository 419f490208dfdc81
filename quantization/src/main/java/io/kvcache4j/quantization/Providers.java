package io.kvcache4j.quantization;

import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;

/**
 * The storage kinds of this module, registered by name in {@code
 * META-INF/services/io.kvcache4j.store.HeadStoreProvider}: {@code int8}, {@code int4} and {@code
 * int2}, the KIVI ones at the paper's defaults ({@link KiviConfig#defaults}).
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

    /** {@code int4}: KIVI at 4 bits ({@link KiviHeadStore}). */
    public static final class Kivi4 implements HeadStoreProvider {
        @Override
        public String name() {
            return "int4";
        }

        @Override
        public String description() {
            return kiviDescription(4);
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            return KiviConfig.defaults(4).factory(pageTokens);
        }
    }

    /** {@code int2}: KIVI at 2 bits ({@link KiviHeadStore}). */
    public static final class Kivi2 implements HeadStoreProvider {
        @Override
        public String name() {
            return "int2";
        }

        @Override
        public String description() {
            return kiviDescription(2);
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            return KiviConfig.defaults(2).factory(pageTokens);
        }
    }

    private static String kiviDescription(int bits) {
        KiviConfig c = KiviConfig.defaults(bits);
        return "KIVI " + bits + "-bit: keys per channel over groups of " + c.groupTokens()
                + " tokens, values per token over groups of " + c.valueGroupChannels() + " channels, newest "
                + c.residualTokens() + " tokens in f16";
    }
}
