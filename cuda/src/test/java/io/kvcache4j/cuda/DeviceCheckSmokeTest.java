package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The device check's own code, run with the emulated device standing in for the GPU (so a GPU run
 * does not fail on a bug of the check itself): every comparison passes, and the benchmark prints.
 */
class DeviceCheckSmokeTest {

    @Test
    void correctnessRunsAndPassesOnTheEmulatedDevice() {
        try (EmulatedDevice dev = new EmulatedDevice()) {
            List<DeviceCheck.Outcome> outcomes = DeviceCheck.correctness(dev, System.out, 1500);
            assertEquals(62, outcomes.size());
            for (DeviceCheck.Outcome o : outcomes) {
                assertTrue(o.passed(), o.toString());
                assertEquals(0.0, o.relativeError() * (o.what().contains("store path") ? 0 : 1), o.toString());
            }
            assertEquals(0, dev.bytesAllocated(), "the check frees what it allocates");
            assertEquals(0, dev.hostBytesAllocated(), "pinned host memory too");
        }
    }

    @Test
    void benchmarkPrintsBothTimings() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (EmulatedDevice dev = new EmulatedDevice();
                PrintStream log = new PrintStream(buf, true, StandardCharsets.UTF_8)) {
            DeviceCheck.bench(dev, 2048, log);
            DeviceCheck.benchInt4(dev, 2048, log);
            assertEquals(0, dev.bytesAllocated());
        }
        String text = buf.toString(StandardCharsets.UTF_8);
        assertTrue(
                text.contains("attention (decode+combine)")
                        && text.contains("d2d copy")
                        && text.contains("hybrid merge adds")
                        && text.contains("pipelined(3) attention")
                        && text.contains("faster than kv_decode_int4"),
                text);
    }

    @Test
    void dumpWritesWhatTheOracleReads(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        try (EmulatedDevice dev = new EmulatedDevice()) {
            DeviceCheck.dump(dev, dir, 300, System.out);
        }
        assertEquals(2L * 8 * 300 * 128, java.nio.file.Files.size(dir.resolve("k.bin")));
        assertEquals(4L * 32 * 128, java.nio.file.Files.size(dir.resolve("out.bin")));
        assertEquals(4L * 32, java.nio.file.Files.size(dir.resolve("lse.bin")));
        assertTrue(java.nio.file.Files.readString(dir.resolve("meta.txt")).startsWith("8 4 128 300 "));
    }
}
