package io.kvcache4j.attention;

import java.lang.invoke.MethodHandles;

/**
 * Chooses the {@link AttentionKernel} implementation once per process, the way Lucene's {@code
 * VectorizationProvider} does: the Vector API kernel when the {@code jdk.incubator.vector} module is
 * in the boot layer and C2 can compile it, else the scalar twin. The choice is logged once at
 * {@code INFO} level on the {@code io.kvcache4j} logger and can be forced with the system property
 * {@code kvcache4j.kernel=panama|scalar} (forcing {@code panama} without the module fails loudly).
 */
public final class AttentionKernels {
    /** System property that forces an implementation. */
    public static final String PROPERTY = Vectorization.PROPERTY;

    private AttentionKernels() {}

    /** The implementation chosen for this process. */
    public static AttentionKernel get() {
        return Holder.CHOICE.implementation();
    }

    /** The scalar twin, always available (tests compare it with {@link #get()}). */
    public static AttentionKernel scalar() {
        return ScalarAttentionKernel.INSTANCE;
    }

    /** Why the active implementation was chosen, for logs and reports. */
    public static String reason() {
        return Holder.CHOICE.reason();
    }

    private static final class Holder {
        static final Vectorization.Choice<AttentionKernel> CHOICE = Vectorization.choose(
                "attention kernel",
                MethodHandles.lookup(),
                "io.kvcache4j.attention.PanamaAttentionKernel",
                AttentionKernel.class,
                ScalarAttentionKernel.INSTANCE);
    }
}
