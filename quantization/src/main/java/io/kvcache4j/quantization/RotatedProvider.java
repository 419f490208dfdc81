package io.kvcache4j.quantization;

import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;
import io.kvcache4j.store.HeadStores;
import java.util.Objects;

/**
 * Storage {@code <inner>+rht}: another installed storage behind a randomized Hadamard rotation
 * ({@link HadamardRotation#wrap}, seed {@link HadamardRotation#DEFAULT_SEED}). The inner storage is
 * looked up by name in {@link HeadStores} when a factory is made. To register a rotated variant of
 * another codec, subclass with a public no-argument constructor that names the inner storage and
 * list the subclass in {@code META-INF/services/io.kvcache4j.store.HeadStoreProvider}; the nested
 * classes here register {@code int8+rht}, {@code int4+rht}, {@code int2+rht}, {@code 1bit+rht},
 * {@code 1bit-quantile+rht} and {@code f16+rht}.
 */
public class RotatedProvider implements HeadStoreProvider {
    private final String inner;

    /** The rotated variant of storage {@code inner}. */
    public RotatedProvider(String inner) {
        this.inner = Objects.requireNonNull(inner, "inner");
        if (inner.isBlank() || inner.contains("+rht")) {
            throw new IllegalArgumentException("inner storage must be a plain storage name, was '" + inner + "'");
        }
    }

    /** The inner storage's name. */
    public String inner() {
        return inner;
    }

    @Override
    public String name() {
        return inner + "+rht";
    }

    @Override
    public String description() {
        return HeadStores.provider(inner).description() + ", behind a randomized Hadamard rotation";
    }

    @Override
    public HeadStoreFactory factory(int pageTokens) {
        return HadamardRotation.wrap(HeadStores.factory(inner, pageTokens), HadamardRotation.DEFAULT_SEED);
    }

    /**
     * The rotated variant of the inner storage with {@code options} (e.g. {@code int4+rht:g=64}),
     * checked now by looking the inner storage up with them.
     */
    @Override
    public HeadStoreProvider withOptions(String name, java.util.Map<String, String> options) {
        StringBuilder spec = new StringBuilder(inner);
        options.forEach((k, v) -> spec.append(':').append(k).append('=').append(v));
        String innerSpec = spec.toString();
        try {
            HeadStores.provider(innerSpec);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("storage '" + name + "': " + e.getMessage(), e);
        }
        return new RotatedProvider(innerSpec) {
            @Override
            public String name() {
                return name;
            }
        };
    }

    /** {@code 1bit+rht}. */
    public static final class OneBit extends RotatedProvider {
        public OneBit() {
            super("1bit");
        }
    }

    /** {@code 1bit-quantile+rht}. */
    public static final class OneBitQuantile extends RotatedProvider {
        public OneBitQuantile() {
            super("1bit-quantile");
        }
    }

    /** {@code f16+rht}: kv-api's exact binary16 pages, rotated. */
    /** {@code int8+rht}. */
    public static final class Int8 extends RotatedProvider {
        public Int8() {
            super("int8");
        }
    }

    /** {@code int4+rht}. */
    public static final class Int4 extends RotatedProvider {
        public Int4() {
            super("int4");
        }
    }

    /** {@code int2+rht}. */
    public static final class Int2 extends RotatedProvider {
        public Int2() {
            super("int2");
        }
    }

    public static final class F16 extends RotatedProvider {
        public F16() {
            super("f16");
        }
    }
}
