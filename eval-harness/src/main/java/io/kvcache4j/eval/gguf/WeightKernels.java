package io.kvcache4j.eval.gguf;

import java.lang.invoke.MethodHandles;
import java.util.Locale;

/**
 * Chooses the weight-kernel implementation once per process: the Vector API one when {@code
 * jdk.incubator.vector} is in the boot layer, C2 is available and the preferred float vector has 8
 * or 16 lanes; otherwise the scalar twin. The choice is logged once at {@code INFO} on the {@code
 * io.kvcache4j} logger and can be forced with {@code -Dkvcache4j.kernel=panama|scalar} (the same
 * property that selects the attention kernels; forcing {@code panama} where it cannot run fails
 * loudly).
 */
public final class WeightKernels {
    /** System property that forces an implementation. */
    public static final String PROPERTY = "kvcache4j.kernel";

    private static final System.Logger LOG = System.getLogger("io.kvcache4j");

    private WeightKernels() {}

    /** {@code "panama"} or {@code "scalar"}: the implementation active in this process. */
    public static String activeName() {
        return Holder.INSTANCE.name();
    }

    /** Why the active implementation was chosen. */
    public static String reason() {
        return Holder.REASON;
    }

    static WeightKernel get() {
        return Holder.INSTANCE;
    }

    static WeightKernel scalar() {
        return ScalarWeightKernel.INSTANCE;
    }

    private static final class Holder {
        static final String REASON;
        static final WeightKernel INSTANCE;

        static {
            String[] reason = new String[1];
            INSTANCE = lookup(reason);
            REASON = reason[0];
            LOG.log(System.Logger.Level.INFO, "kvcache4j weight kernel: " + INSTANCE.name() + " (" + REASON + ")");
        }
    }

    private static WeightKernel lookup(String[] reason) {
        String forced = System.getProperty(PROPERTY, "").trim().toLowerCase(Locale.ROOT);
        if (!forced.isEmpty() && !forced.equals("panama") && !forced.equals("scalar")) {
            throw new IllegalArgumentException(PROPERTY + "=" + forced + " is not one of: panama, scalar");
        }
        if (forced.equals("scalar")) {
            reason[0] = "forced by -D" + PROPERTY + "=scalar";
            return ScalarWeightKernel.INSTANCE;
        }
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            if (forced.equals("panama")) {
                throw new IllegalStateException(
                        PROPERTY + "=panama needs the JVM flag --add-modules=jdk.incubator.vector");
            }
            reason[0] = "jdk.incubator.vector is not in the boot layer; pass --add-modules=jdk.incubator.vector";
            return ScalarWeightKernel.INSTANCE;
        }
        if (forced.isEmpty() && !c2Available()) {
            reason[0] = "C2 compiler unavailable (interpreted or C1-only VM)";
            return ScalarWeightKernel.INSTANCE;
        }
        try {
            Class<?> cls = MethodHandles.lookup().findClass("io.kvcache4j.eval.gguf.PanamaWeightKernel");
            WeightKernel k = (WeightKernel) cls.getDeclaredConstructor().newInstance();
            reason[0] = forced.isEmpty() ? "Vector API available" : "forced by -D" + PROPERTY + "=panama";
            return k;
        } catch (ReflectiveOperationException | LinkageError e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            if (forced.equals("panama")) {
                throw new IllegalStateException("Vector API weight kernel cannot be loaded: " + cause, cause);
            }
            reason[0] = "Vector API weight kernel unusable: " + cause;
            return ScalarWeightKernel.INSTANCE;
        }
    }

    private static boolean c2Available() {
        if (System.getProperty("java.vm.name", "").contains("Zero")) {
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
