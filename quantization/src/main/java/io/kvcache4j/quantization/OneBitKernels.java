package io.kvcache4j.quantization;

import io.kvcache4j.attention.Vectorization;
import java.lang.invoke.MethodHandles;

/**
 * Chooses the {@link OneBitKernel} once per process through kv-api's {@link Vectorization}: the
 * Vector API kernel when {@code jdk.incubator.vector} is in the boot layer and C2 can compile it,
 * else the scalar twin; {@code -Dkvcache4j.kernel=panama|scalar} forces either.
 */
public final class OneBitKernels {
    private OneBitKernels() {}

    /** The implementation chosen for this process. */
    public static OneBitKernel get() {
        return Holder.CHOICE.implementation();
    }

    /** The scalar twin, always available. */
    public static OneBitKernel scalar() {
        return OneBitScalarKernel.INSTANCE;
    }

    /** Why the active implementation was chosen. */
    public static String reason() {
        return Holder.CHOICE.reason();
    }

    private static final class Holder {
        static final Vectorization.Choice<OneBitKernel> CHOICE = Vectorization.choose(
                "1-bit kernel",
                MethodHandles.lookup(),
                "io.kvcache4j.quantization.OneBitPanamaKernel",
                OneBitKernel.class,
                OneBitScalarKernel.INSTANCE);
    }
}
