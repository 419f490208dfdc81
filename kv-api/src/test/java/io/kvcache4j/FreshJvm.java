package io.kvcache4j;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.management.ObjectName;

/**
 * Tests of "the same bits in every JIT tier" (kv-api's test jar): runs a {@code main} class of the
 * test class path in a child JVM started by the test (same {@code java} binary, same class path,
 * chosen flags such as {@code -Xint}), moves named float arrays between the JVMs as raw bits, and
 * asks HotSpot which methods C2 has compiled.
 */
public final class FreshJvm {
    private FreshJvm() {}

    /** Whether {@code jdk.incubator.vector} is in this JVM's boot layer (the surefire run with the Vector API). */
    public static boolean hasVectorModule() {
        return ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
    }

    /**
     * Runs {@code mainClass} with {@code args} in a new JVM with {@code jvmFlags} (after the vector
     * module and native access flags, which follow this JVM's), waits at most {@code timeoutSeconds},
     * and returns its console output. Fails with that output if it exits non-zero or times out.
     */
    public static String run(Class<?> mainClass, List<String> jvmFlags, List<String> args, long timeoutSeconds)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current()
                .info()
                .command()
                .orElseThrow(() -> new IllegalStateException("this JVM's java binary is unknown")));
        if (hasVectorModule()) {
            cmd.add("--add-modules=jdk.incubator.vector");
        }
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.addAll(jvmFlags);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass.getName());
        cmd.addAll(args);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out;
        try (InputStream in = p.getInputStream()) {
            out = in.readAllBytes();
        }
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("child JVM " + cmd + " still running after " + timeoutSeconds + " s");
        }
        String console = new String(out, StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new AssertionError("child JVM " + cmd + " exited with " + p.exitValue() + ":\n" + console);
        }
        return console;
    }

    /** Writes named float arrays as raw IEEE bits (NaN payloads and signed zeros kept). */
    public static void writeBits(Path file, Map<String, float[]> arrays) throws IOException {
        try (OutputStream os = Files.newOutputStream(file);
                DataOutputStream out = new DataOutputStream(new java.io.BufferedOutputStream(os))) {
            out.writeInt(arrays.size());
            for (Map.Entry<String, float[]> e : arrays.entrySet()) {
                out.writeUTF(e.getKey());
                out.writeInt(e.getValue().length);
                for (float f : e.getValue()) {
                    out.writeInt(Float.floatToRawIntBits(f));
                }
            }
        }
    }

    /** Reads what {@link #writeBits} wrote, in the same order. */
    public static Map<String, float[]> readBits(Path file) throws IOException {
        try (InputStream is = Files.newInputStream(file);
                DataInputStream in = new DataInputStream(new java.io.BufferedInputStream(is))) {
            int count = in.readInt();
            Map<String, float[]> arrays = new LinkedHashMap<>();
            for (int i = 0; i < count; i++) {
                String name = in.readUTF();
                float[] a = new float[in.readInt()];
                for (int j = 0; j < a.length; j++) {
                    a[j] = Float.intBitsToFloat(in.readInt());
                }
                arrays.put(name, a);
            }
            return arrays;
        }
    }

    /**
     * Whether HotSpot holds a C2 (tier 4) compilation of a method whose name starts with {@code
     * qualifiedName} (e.g. {@code "io.kvcache4j.attention.PanamaAttentionKernel.scan("}), as the
     * {@code Compiler.codelist} diagnostic command lists it.
     */
    public static boolean compiledByC2(String qualifiedName) {
        for (String line : codeList().split("\n")) {
            String[] f = line.trim().split("\\s+");
            // compile_id comp_level state method [code ranges]
            if (f.length >= 4 && f[1].equals("4") && f[3].startsWith(qualifiedName)) {
                return true;
            }
        }
        return false;
    }

    /**
     * The methods whose names start with {@code prefix} and that have code of the given tier (1-3
     * C1, 4 C2), as {@code Class.method} without the package and signature, sorted.
     */
    public static java.util.SortedSet<String> compiledMethods(String prefix, int tier) {
        java.util.SortedSet<String> names = new java.util.TreeSet<>();
        for (String line : codeList().split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 4 && f[1].equals(Integer.toString(tier)) && f[3].startsWith(prefix)) {
                String name = f[3].substring(0, f[3].indexOf('('));
                names.add(name.substring(name.lastIndexOf('.', name.lastIndexOf('.') - 1) + 1));
            }
        }
        return names;
    }

    private static String codeList() {
        try {
            return (String) ManagementFactory.getPlatformMBeanServer()
                    .invoke(
                            new ObjectName("com.sun.management:type=DiagnosticCommand"),
                            "compilerCodelist",
                            new Object[] {new String[0]},
                            new String[] {String[].class.getName()});
        } catch (Exception e) {
            throw new IllegalStateException("Compiler.codelist diagnostic command failed", e);
        }
    }

    /** Index of the first float whose bits differ, or -1; arrays of different length differ at the shorter length. */
    public static int firstDifference(float[] a, float[] b) {
        int n = Math.min(a.length, b.length);
        for (int i = 0; i < n; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                return i;
            }
        }
        return a.length == b.length ? -1 : n;
    }

    /** How many floats differ in their bits (over the common length). */
    public static int countDifferences(float[] a, float[] b) {
        int n = Math.min(a.length, b.length);
        int d = 0;
        for (int i = 0; i < n; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                d++;
            }
        }
        return d + Math.abs(a.length - b.length);
    }
}
