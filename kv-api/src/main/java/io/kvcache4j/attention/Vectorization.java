package io.kvcache4j.attention;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Locale;

/**
 * The one place that decides, per process, whether a Vector API implementation of a kernel family is
 * used or its scalar twin (the way Lucene's {@code VectorizationProvider} decides): the Vector API one
 * when {@code jdk.incubator.vector} is in the boot layer and C2 can compile it, else the scalar one.
 * The system property {@link #PROPERTY} ({@code panama} or {@code scalar}) forces a choice; forcing
 * {@code panama} where it cannot run fails loudly instead of falling back.
 */
public final class Vectorization {
    /** System property that forces an implementation for every kernel family. */
    public static final String PROPERTY = "kvcache4j.kernel";

    private static final System.Logger LOG = System.getLogger("io.kvcache4j");

    private Vectorization() {}

    /** An implementation and why it was chosen. */
    public record Choice<T>(T implementation, String reason) {}

    /**
     * Chooses between the Vector API class {@code panamaClass} (loaded through {@code lookup}, so it may
     * be package-private; its no-argument constructor may throw {@link UnsupportedOperationException}
     * to decline) and {@code scalar}, and logs the choice for {@code family} once.
     */
    public static <T> Choice<T> choose(
            String family, MethodHandles.Lookup lookup, String panamaClass, Class<T> type, T scalar) {
        Choice<T> c = decide(lookup, panamaClass, type, scalar);
        LOG.log(
                System.Logger.Level.INFO,
                "kvcache4j " + family + ": " + name(c.implementation(), scalar) + " (" + c.reason() + ")");
        return c;
    }

    private static <T> String name(T chosen, T scalar) {
        return chosen == scalar ? "scalar" : "panama";
    }

    private static <T> Choice<T> decide(MethodHandles.Lookup lookup, String panamaClass, Class<T> type, T scalar) {
        String forced = System.getProperty(PROPERTY, "").trim().toLowerCase(Locale.ROOT);
        if (!forced.isEmpty() && !forced.equals("panama") && !forced.equals("scalar")) {
            throw new IllegalArgumentException(PROPERTY + "=" + forced + " is not one of: panama, scalar");
        }
        if (forced.equals("scalar")) {
            return new Choice<>(scalar, "forced by -D" + PROPERTY + "=scalar");
        }
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isEmpty()) {
            if (forced.equals("panama")) {
                throw new IllegalStateException(
                        PROPERTY + "=panama needs the JVM flag --add-modules=jdk.incubator.vector");
            }
            return new Choice<>(
                    scalar, "jdk.incubator.vector is not in the boot layer; pass --add-modules=jdk.incubator.vector");
        }
        if (forced.isEmpty() && !c2Available()) {
            return new Choice<>(scalar, "C2 compiler unavailable (interpreted or C1-only VM)");
        }
        try {
            // The caller's lookup reaches its package-private class and constructor.
            Class<?> cls = lookup.findClass(panamaClass);
            T impl = type.cast(lookup.findConstructor(cls, MethodType.methodType(void.class))
                    .invoke());
            return new Choice<>(
                    impl, forced.isEmpty() ? "Vector API available" : "forced by -D" + PROPERTY + "=panama");
        } catch (ReflectiveOperationException | LinkageError | UnsupportedOperationException e) {
            Throwable cause = e.getCause() != null ? e.getCause() : e;
            if (forced.equals("panama")) {
                throw new IllegalStateException("Vector API implementation cannot be used: " + cause, cause);
            }
            return new Choice<>(scalar, "Vector API implementation unusable: " + cause);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("constructing " + panamaClass + " failed", t);
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
