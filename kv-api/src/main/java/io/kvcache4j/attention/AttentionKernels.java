package io.kvcache4j.attention;

import java.lang.invoke.MethodHandles;
import java.util.Locale;

/**
 * Chooses the {@link AttentionKernel} implementation once per process, the way Lucene's {@code
 * VectorizationProvider} does: the Vector API kernel when the {@code jdk.incubator.vector} module is
 * in the boot layer and C2 can compile it, else the scalar twin. The choice is logged once at
 * {@code INFO} level on the {@code io.kvcache4j} logger and can be forced with the system property
 * {@code kvcache4j.kernel=panama|scalar} (forcing {@code panama} without the module fails loudly).
 */
public final class AttentionKernels {
    /** System property that forces an implementation. */
    public static final String PROPERTY = "kvcache4j.kernel";

    private static final System.Logger LOG = System.getLogger("io.kvcache4j");

    private AttentionKernels() {}

    /** The implementation chosen for this process. */
    public static AttentionKernel get() {
        return Holder.INSTANCE;
    }

    /** The scalar twin, always available (tests compare it with {@link #get()}). */
    public static AttentionKernel scalar() {
        return ScalarAttentionKernel.INSTANCE;
    }

    /** Why the active implementation was chosen, for logs and reports. */
    public static String reason() {
        return Holder.REASON;
    }

    private static final class Holder {
        static final String REASON;
        static final AttentionKernel INSTANCE;

        static {
            String[] reason = new String[1];
            INSTANCE = lookup(reason);
            REASON = reason[0];
            LOG.log(System.Logger.Level.INFO, "kvcache4j attention kernel: " + INSTANCE.name() + " (" + REASON + ")");
        }
    }

    private static AttentionKernel lookup(String[] reason) {
        String forced = System.getProperty(PROPERTY, "").trim().toLowerCase(Locale.ROOT);
        if (!forced.isEmpty() && !forced.equals("panama") && !forced.equals("scalar")) {
            throw new IllegalArgumentException(PROPERTY + "=" + forced + " is not one of: panama, scalar");
        }
        if (forced.equals("scalar")) {
            reason[0] = "forced by -D" + PROPERTY + "=scalar";
            return ScalarAttentionKernel.INSTANCE;
        }
        boolean hasModule =
                ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
        if (!hasModule) {
            if (forced.equals("panama")) {
                throw new IllegalStateException(
                        PROPERTY + "=panama needs the JVM flag --add-modules=jdk.incubator.vector");
            }
            reason[0] = "jdk.incubator.vector is not in the boot layer; pass --add-modules=jdk.incubator.vector";
            return ScalarAttentionKernel.INSTANCE;
        }
        if (forced.isEmpty() && !c2Available()) {
            reason[0] = "C2 compiler unavailable (interpreted or C1-only VM)";
            return ScalarAttentionKernel.INSTANCE;
        }
        try {
            Class<?> cls = MethodHandles.lookup().findClass("io.kvcache4j.attention.PanamaAttentionKernel");
            AttentionKernel kernel =
                    (AttentionKernel) cls.getDeclaredConstructor().newInstance();
            reason[0] = forced.isEmpty() ? "Vector API available" : "forced by -D" + PROPERTY + "=panama";
            return kernel;
        } catch (ReflectiveOperationException | LinkageError e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            if (forced.equals("panama")) {
                throw new IllegalStateException("Vector API kernel cannot be loaded: " + cause, cause);
            }
            reason[0] = "Vector API kernel unusable: " + cause;
            return ScalarAttentionKernel.INSTANCE;
        }
    }

    private static boolean c2Available() {
        String vmName = System.getProperty("java.vm.name", "");
        if (vmName.contains("Zero")) {
            return false;
        }
        for (String arg :
                java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (arg.equals("-Xint") || arg.startsWith("-XX:TieredStopAtLevel=")) {
                return false;
            }
        }
        return true;
    }
}
