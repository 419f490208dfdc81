package io.kvcache4j.eval.gguf;

import io.kvcache4j.attention.Vectorization;
import java.lang.invoke.MethodHandles;

/**
 * Chooses the weight-kernel implementation once per process: the Vector API one when {@code
 * jdk.incubator.vector} is in the boot layer, C2 is available and the preferred float vector has 8
 * or 16 lanes; otherwise the scalar twin. The choice is logged once at {@code INFO} on the {@code
 * io.kvcache4j} logger and can be forced with {@code -Dkvcache4j.kernel=panama|scalar} (the same
 * property that selects the attention kernels; forcing {@code panama} where it cannot run fails
 * loudly).
 */
public final class WeightKernels {
    /** System property that forces an implementation (shared with the attention kernels). */
    public static final String PROPERTY = Vectorization.PROPERTY;

    private WeightKernels() {}

    /** {@code "panama"} or {@code "scalar"}: the implementation active in this process. */
    public static String activeName() {
        return Holder.CHOICE.implementation().name();
    }

    /** Why the active implementation was chosen. */
    public static String reason() {
        return Holder.CHOICE.reason();
    }

    static WeightKernel get() {
        return Holder.CHOICE.implementation();
    }

    static WeightKernel scalar() {
        return ScalarWeightKernel.INSTANCE;
    }

    private static final class Holder {
        static final Vectorization.Choice<WeightKernel> CHOICE = Vectorization.choose(
                "weight kernel",
                MethodHandles.lookup(),
                "io.kvcache4j.eval.gguf.PanamaWeightKernel",
                WeightKernel.class,
                ScalarWeightKernel.INSTANCE);
    }
}
