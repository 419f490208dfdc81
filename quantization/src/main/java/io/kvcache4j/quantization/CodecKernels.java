package io.kvcache4j.quantization;

import io.kvcache4j.attention.Vectorization;
import java.lang.invoke.MethodHandles;

/**
 * Chooses the {@link CodecKernel} once per process, as kv-api's kernels are chosen ({@link
 * Vectorization}): the Vector API one when {@code jdk.incubator.vector} is in the boot layer, C2 is
 * available and the preferred float vector has 8 or 16 lanes, else the scalar twin. The choice is
 * logged once on the {@code io.kvcache4j} logger and can be forced with {@code
 * -Dkvcache4j.kernel=panama|scalar}.
 */
public final class CodecKernels {
    private CodecKernels() {}

    /** The implementation chosen for this process. */
    public static CodecKernel get() {
        return Holder.CHOICE.implementation();
    }

    /** The scalar twin, always available. */
    public static CodecKernel scalar() {
        return ScalarCodecKernel.INSTANCE;
    }

    /**
     * A new Vector API kernel, whatever the process chose (tests compare both side by side).
     *
     * @throws UnsupportedOperationException if the Vector API is absent or the vector width unsupported
     */
    public static CodecKernel panama() {
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            throw new UnsupportedOperationException("the panama codec kernel needs --add-modules=jdk.incubator.vector");
        }
        try {
            return (CodecKernel) MethodHandles.lookup()
                    .findConstructor(PanamaCodecKernel.class, java.lang.invoke.MethodType.methodType(void.class))
                    .invoke();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("constructing the panama codec kernel failed", t);
        }
    }

    /** Why the active implementation was chosen. */
    public static String reason() {
        return Holder.CHOICE.reason();
    }

    private static final class Holder {
        static final Vectorization.Choice<CodecKernel> CHOICE = Vectorization.choose(
                "codec kernel",
                MethodHandles.lookup(),
                "io.kvcache4j.quantization.PanamaCodecKernel",
                CodecKernel.class,
                ScalarCodecKernel.INSTANCE);
    }
}
