package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvcache4j.api.KvDType;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The shipped kernel binaries are those of the shipped sources: {@code kernels.sha256} (written by
 * {@code cuda/scripts/build-kernels.sh}) records the SHA-256 of the {@code .cu} files and the nvcc
 * flags, checked on every build; where nvcc of the recorded release is installed the PTX is rebuilt
 * and compared byte for byte. Without nvcc the shipped binaries are used as they are.
 */
class KernelBinariesTest {
    private static final Path SOURCES = Path.of(System.getProperty("kvcache4j.cuda.sources", "src/main/cuda"));
    private static final Path SCRIPT = Path.of(System.getProperty("kvcache4j.cuda.script", "scripts/build-kernels.sh"));

    static Properties manifest() throws IOException {
        Properties p = new Properties();
        p.load(new java.io.ByteArrayInputStream(JCudaDevice.resource("kernels.sha256", false)));
        return p;
    }

    static String flags() throws IOException {
        Matcher m = Pattern.compile("(?m)^FLAGS=\"([^\"]*)\"").matcher(Files.readString(SCRIPT));
        assertTrue(m.find(), "FLAGS line in " + SCRIPT);
        return m.group(1);
    }

    @Test
    void recordedHashIsTheHashOfTheSources() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        List<Path> files;
        try (Stream<Path> s = Files.list(SOURCES)) {
            files = s.filter(f -> f.getFileName().toString().endsWith(".cu"))
                    .sorted((a, b) ->
                            a.getFileName().toString().compareTo(b.getFileName().toString()))
                    .toList();
        }
        assertTrue(!files.isEmpty(), "no .cu sources under " + SOURCES);
        for (Path f : files) {
            buf.write((f.getFileName() + "\n").getBytes(StandardCharsets.UTF_8));
            buf.write(Files.readAllBytes(f));
        }
        buf.write(("flags " + flags() + "\n").getBytes(StandardCharsets.UTF_8));
        String hash =
                HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(buf.toByteArray()));
        assertEquals(
                hash,
                manifest().getProperty("sources"),
                "the .cu sources changed since the binaries were built: run cuda/scripts/build-kernels.sh");
    }

    @Test
    void binariesLookRight() {
        byte[] ptx = JCudaDevice.resource("kv_attention.ptx", true);
        assertEquals(0, ptx[ptx.length - 1], "PTX handed to cuModuleLoadData ends with NUL");
        String text = new String(ptx, 0, ptx.length - 1, StandardCharsets.US_ASCII);
        for (String k : List.of(
                "kv_decode_f16",
                "kv_decode_bf16",
                "kv_decode_int4",
                "kv_combine",
                "kv_combine_hybrid",
                "kv_append_f16",
                "kv_append_bf16",
                "kv_gather_rows")) {
            assertTrue(text.contains(".entry " + k + "("), "PTX has " + k);
        }
        int defaultUnits = JCudaDevice.pipelineUnits;
        JCudaDevice.pipelineUnits = 0;
        for (String shape : JCudaDevice.FIXED_SHAPES) {
            for (KvDType type : List.of(KvDType.F16, KvDType.BF16)) {
                String k = JCudaDevice.decodeKernel(
                        type,
                        Integer.parseInt(shape.substring(1, shape.indexOf('_'))),
                        Integer.parseInt(shape.substring(shape.indexOf("_d") + 2)));
                assertTrue(k.endsWith(shape), k);
                assertTrue(text.contains(".entry " + k + "("), "PTX has the fixed-shape kernel " + k);
            }
        }
        JCudaDevice.pipelineUnits = defaultUnits;
        assertEquals("kv_decode_f16", JCudaDevice.decodeKernel(KvDType.F16, 3, 96), "other shapes: the general kernel");
        assertTrue(text.contains(".entry kv_decode_int4_g4_d128_p3("), "PTX has the pipelined int4 kernel");
        assertEquals("kv_decode_int4_g4_d128_p3", JCudaDevice.int4Kernel(new KiviLayout(128, 32, 32), 4));
        assertEquals("kv_decode_int4_g4_d128_p3", JCudaDevice.int4Kernel(new KiviLayout(128, 64, 16), 4));
        assertEquals("kv_decode_int4", JCudaDevice.int4Kernel(new KiviLayout(128, 32, 8), 4), "16 value groups");
        assertEquals("kv_decode_int4", JCudaDevice.int4Kernel(new KiviLayout(64, 32, 32), 4), "d 64");
        assertEquals("kv_decode_int4", JCudaDevice.int4Kernel(new KiviLayout(128, 32, 32), 8), "group 8");
        for (String k : JCudaDevice.PIPELINED) {
            assertTrue(text.contains(".entry " + k + "("), "PTX has the pipelined kernel " + k);
            // the launch's dynamic shared memory covers the ring and the kernel's state, within an SM
            int g = k.lastIndexOf("_g");
            int group = Integer.parseInt(k.substring(g + 2, k.indexOf("_d", g)));
            int units = Integer.parseInt(k.substring(k.lastIndexOf("_p") + 2));
            int bytes = JCudaDevice.sharedBytes(k, group);
            assertTrue(bytes >= 4 * units * 32 * 128 * 2 && bytes <= 227 * 1024, k + ": " + bytes);
        }
        int units = JCudaDevice.pipelineUnits;
        try {
            JCudaDevice.pipelineUnits = 3;
            assertEquals("kv_decode_f16_g4_d128_p3", JCudaDevice.decodeKernel(KvDType.F16, 4, 128));
            assertEquals("kv_decode_bf16_g4_d128_p3", JCudaDevice.decodeKernel(KvDType.BF16, 4, 128));
            assertEquals(
                    "kv_decode_bf16_g8_d128",
                    JCudaDevice.decodeKernel(KvDType.BF16, 8, 128),
                    "no pipelined kernel for the shape: the fixed-shape one");
            assertEquals("kv_decode_f16_g4_d64", JCudaDevice.decodeKernel(KvDType.F16, 4, 64));
            assertEquals(0, JCudaDevice.sharedBytes("kv_decode_f16_g4_d64", 4));
            JCudaDevice.pipelineUnits = 0;
            assertEquals("kv_decode_f16_g4_d128", JCudaDevice.decodeKernel(KvDType.F16, 4, 128));
        } finally {
            JCudaDevice.pipelineUnits = units;
        }
        byte[] cubin = JCudaDevice.resource("kv_attention.sm_90.cubin", false);
        assertArrayEquals(new byte[] {0x7f, 'E', 'L', 'F'}, java.util.Arrays.copyOf(cubin, 4));
    }

    @Test
    void whereNvccIsInstalledTheShippedPtxIsCurrent() throws Exception {
        String nvcc = Stream.of(System.getenv().getOrDefault("PATH", "").split(":"))
                .map(d -> Path.of(d, "nvcc"))
                .filter(Files::isExecutable)
                .map(Path::toString)
                .findFirst()
                .orElse(Files.isExecutable(Path.of("/usr/local/bin/nvcc")) ? "/usr/local/bin/nvcc" : null);
        assumeTrue(nvcc != null, "skipped: no nvcc on this machine, the shipped kernel binaries are used as they are");
        Process v =
                new ProcessBuilder(nvcc, "--version").redirectErrorStream(true).start();
        String version = new String(v.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        v.waitFor();
        Matcher m = Pattern.compile("release [0-9.]*").matcher(version);
        String release = m.find() ? m.group() : "?";
        assumeTrue(
                release.equals(manifest().getProperty("nvcc")),
                "skipped: nvcc " + release + " differs from the " + manifest().getProperty("nvcc")
                        + " the binaries were built with");
        Process p = new ProcessBuilder("bash", SCRIPT.toString(), "--check")
                .redirectErrorStream(true)
                .start();
        p.getOutputStream().close();
        var env = p.info();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "nvcc finished");
        assertEquals(
                0, p.exitValue(), "build-kernels.sh --check (" + env.command().orElse("") + "):\n" + out);
    }
}
