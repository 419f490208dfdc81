package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Optional;

/**
 * Finds the CUDA device of this process, once: loads {@code libJCudaDriver} (which needs the NVIDIA
 * driver's {@code libcuda.so.1}), calls {@code cuInit} and {@code cuDeviceGetCount}, opens device 0
 * and loads the kernels. Logs the choice and its reason through {@link System.Logger} ({@code
 * io.kvcache4j.cuda}); without a driver, a device or a loadable kernel image the answer is empty and
 * {@link #reason()} says why, and callers use the CPU path. Thread-safe.
 */
public final class CudaBackends {
    private static final System.Logger LOG = System.getLogger("io.kvcache4j.cuda");

    private CudaBackends() {}

    private static final class Holder {
        static final String[] REASON = new String[1];
        static final CudaBackend BACKEND = probe(REASON);
    }

    /** The GPU backend, or empty (see {@link #reason()}). */
    public static Optional<CudaBackend> available() {
        return Optional.ofNullable(Holder.BACKEND);
    }

    /** Why {@link #available()} answered as it did. */
    public static String reason() {
        return Holder.REASON[0];
    }

    /**
     * Storage in {@code type} on the GPU when {@link #available()} finds one, else kv-api's exact CPU
     * storage ({@link HeadStoreFactory#exact}); logs which and why.
     */
    public static HeadStoreFactory factoryOrCpu(KvDType type, int pageTokens) {
        Optional<CudaBackend> backend = available();
        if (backend.isPresent() && type != KvDType.F32) {
            LOG.log(
                    System.Logger.Level.INFO,
                    "kvcache4j cuda: " + type + " storage on "
                            + backend.get().device().name());
            return backend.get().factory(type, pageTokens);
        }
        LOG.log(
                System.Logger.Level.INFO,
                "kvcache4j cuda: " + type + " storage on the CPU ("
                        + (backend.isPresent() ? "the CUDA stores keep f16 or bf16" : reason()) + ")");
        return HeadStoreFactory.exact(type, pageTokens);
    }

    /** A backend on a fresh {@link EmulatedDevice}: the kernels' CPU twin, for tests and for machines without a GPU. */
    public static CudaBackend emulated() {
        return new CudaBackend(new EmulatedDevice(), "CPU emulation of the CUDA kernels");
    }

    private static CudaBackend probe(String[] reason) {
        if (Boolean.getBoolean("kvcache4j.cuda.disable")) {
            reason[0] = "disabled by -Dkvcache4j.cuda.disable=true";
        } else {
            try {
                jcuda.driver.JCudaDriver.setExceptionsEnabled(true);
                jcuda.driver.JCudaDriver.cuInit(0);
                int[] count = new int[1];
                jcuda.driver.JCudaDriver.cuDeviceGetCount(count);
                if (count[0] < 1) {
                    reason[0] = "the CUDA driver reports no device";
                } else {
                    int[] version = new int[1];
                    jcuda.driver.JCudaDriver.cuDriverGetVersion(version);
                    JCudaDevice device = new JCudaDevice(0);
                    reason[0] = "CUDA driver " + version[0] / 1000 + "." + version[0] % 1000 / 10 + ", " + count[0]
                            + " device(s); using " + device.name();
                    LOG.log(System.Logger.Level.INFO, "kvcache4j cuda: " + reason[0]);
                    return new CudaBackend(device, reason[0]);
                }
            } catch (Throwable t) {
                // UnsatisfiedLinkError without libJCudaDriver or libcuda.so.1, CudaException from the driver.
                reason[0] = t instanceof UnsatisfiedLinkError
                        ? "no CUDA driver: the JCuda driver library did not load" + detail(t.getMessage())
                        : "the CUDA driver failed: " + firstLine(t.getMessage());
            }
        }
        // Not a choice yet: the caller that falls back (factoryOrCpu) logs the CPU choice at INFO, and a
        // command line that refuses a GPU storage names this reason in its one-line error.
        LOG.log(System.Logger.Level.DEBUG, "kvcache4j cuda: no GPU (" + reason[0] + ")");
        return null;
    }

    /**
     * The library the loader could not open (e.g. {@code " (libcuda.so.1: cannot open shared object
     * file)"}), or empty.
     */
    private static String detail(String s) {
        if (s == null) {
            return "";
        }
        for (String line : s.split("\n")) {
            String[] parts = line.split(": ");
            for (int i = 1; i < parts.length; i++) {
                if (parts[i].startsWith("cannot open shared object file")) {
                    return " (" + parts[i - 1].strip() + ": cannot open shared object file)";
                }
            }
        }
        return "";
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
