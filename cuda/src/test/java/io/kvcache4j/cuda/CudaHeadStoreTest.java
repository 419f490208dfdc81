package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.eviction.StreamingLlmPolicy;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The device-resident store and the layer attention, on the emulated device. */
class CudaHeadStoreTest {

    @ParameterizedTest
    @EnumSource(
            value = KvDType.class,
            names = {"F16", "BF16"})
    void appendAndCompactKeepDeviceRowsEqualToTheMirror(KvDType type) {
        int d = 32;
        SplittableRandom r = new SplittableRandom(2);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            CudaHeadStore store = new CudaHeadStore(dev, type, d, 16);
            float[] k = new float[700 * d];
            float[] v = new float[700 * d];
            for (int i = 0; i < k.length; i++) {
                k[i] = (float) (r.nextDouble() * 8 - 4);
                v[i] = (float) (r.nextDouble() * 8 - 4);
            }
            store.append(k, 0, v, 0, d, 300); // grows past the first capacity of 256 rows
            for (int t = 300; t < 700; t++) {
                store.append(k, t * d, v, t * d, d, 1);
            }
            checkRows(store, d);
            assertEquals(dev.bytesAllocated(), store.deviceBytes());
            assertEquals(store.mirror().bytesHeld() + store.deviceBytes() + hostBytes(store), store.bytesHeld());
            int[] sources = new int[400];
            int moved = 0;
            for (int s = 100; s < 700 && moved < 400; s += 1 + (s % 3 == 0 ? 1 : 0)) {
                sources[moved++] = s;
            }
            store.compact(50, sources, moved, 50 + moved);
            assertEquals(50 + moved, store.count());
            checkRows(store, d);
            assertEquals(dev.bytesAllocated(), store.deviceBytes());
            store.close();
            assertEquals(0, dev.bytesAllocated(), "close frees every device byte");
            assertEquals(0, dev.hostBytesAllocated(), "and every pinned host byte");
            assertThrows(IllegalStateException.class, () -> store.append(k, 0, v, 0, d, 1));
        }
    }

    private static long hostBytes(CudaHeadStore s) {
        return s.bytesHeld() - s.mirror().bytesHeld() - s.deviceBytes();
    }

    private static void checkRows(CudaHeadStore store, int d) {
        short[] rows = store.downloadRows();
        int n = store.count();
        float[] row = new float[d];
        for (int s = 0; s < n; s++) {
            store.readKey(s, row, 0);
            for (int i = 0; i < d; i++) {
                assertEquals(KernelEmulator.encode(store.type(), row[i]), rows[s * d + i], "key " + s + "," + i);
            }
            store.readValue(s, row, 0);
            for (int i = 0; i < d; i++) {
                assertEquals(KernelEmulator.encode(store.type(), row[i]), rows[(n + s) * d + i], "value " + s);
            }
        }
    }

    /**
     * A device-only store (no host mirror) holds the same rows as a mirrored one: reads, attention and
     * compaction read them back from the device; its bytes are the device's and the pinned staging.
     */
    @Test
    void deviceOnlyStoreReadsItsRowsBackFromTheDevice() {
        int d = 64;
        SplittableRandom r = new SplittableRandom(31);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            CudaHeadStore mirrored = new CudaHeadStore(dev, KvDType.F16, d, 16);
            CudaHeadStore only = CudaHeadStore.deviceOnly(dev, KvDType.F16, d);
            assertEquals(null, only.mirror());
            float[] k = new float[300 * d];
            float[] v = new float[300 * d];
            for (int i = 0; i < k.length; i++) {
                k[i] = (float) r.nextGaussian();
                v[i] = (float) r.nextGaussian();
            }
            for (CudaHeadStore s : new CudaHeadStore[] {mirrored, only}) {
                s.append(k, 0, v, 0, d, 250);
                s.append(k, 250 * d, v, 250 * d, d, 50);
                int[] sources = new int[200];
                for (int j = 0; j < sources.length; j++) {
                    sources[j] = 100 + j;
                }
                s.compact(50, sources, 200, 250);
            }
            assertEquals(250, only.count());
            float[] a = new float[d];
            float[] b = new float[d];
            for (int slot = 0; slot < 250; slot += 7) {
                mirrored.readKey(slot, a, 0);
                only.readKey(slot, b, 0);
                assertEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(b), "key " + slot);
                mirrored.readValue(slot, a, 0);
                only.readValue(slot, b, 0);
                assertEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(b), "value " + slot);
            }
            float[] q = new float[2 * d];
            for (int i = 0; i < q.length; i++) {
                q[i] = (float) r.nextGaussian();
            }
            float[][] out = new float[2][2 * d];
            CudaHeadStore[] both = {mirrored, only};
            for (int w = 0; w < 2; w++) {
                io.kvcache4j.attention.GroupAttention st = new io.kvcache4j.attention.GroupAttention(2, d);
                st.begin(q, 0, 0.125f);
                both[w].attend(st, new io.kvcache4j.store.SlotSelection().prefix(250));
                st.finish(out[w], 0);
            }
            assertEquals(java.util.Arrays.toString(out[0]), java.util.Arrays.toString(out[1]), "attention");
            var e = assertThrows(IllegalArgumentException.class, () -> only.compact(0, new int[] {300}, 1, 1));
            assertTrue(e.getMessage().contains("out of range [0, 250)"), e.getMessage());
            // beyond the device, only the pinned staging of the largest append (250 f32 key and value rows)
            assertTrue(only.bytesHeld() - only.deviceBytes() <= 2L * 250 * d * 4, "bytes " + only.bytesHeld());
            assertEquals(
                    mirrored.mirror().bytesHeld(),
                    mirrored.bytesHeld() - only.bytesHeld(),
                    "the same store but for the mirror");
            mirrored.close();
            only.close();
            assertEquals(0, dev.bytesAllocated());
        }
    }

    @Test
    void rejectsShapesTheKernelsDoNotTake() {
        try (EmulatedDevice dev = new EmulatedDevice()) {
            assertThrows(IllegalArgumentException.class, () -> new CudaHeadStore(dev, KvDType.F32, 64, 16));
            assertThrows(IllegalArgumentException.class, () -> new CudaHeadStore(dev, KvDType.F16, 60, 16));
            assertThrows(IllegalArgumentException.class, () -> new CudaHeadStore(dev, KvDType.F16, 512, 16));
        }
    }

    /**
     * A whole cache on the CUDA factory (emulated device) against the same cache on kv-api's f16
     * storage: prefill, decode steps with eviction (StreamingLLM compaction on the device), outputs and
     * log-sum-exps.
     */
    @Test
    void cacheOnTheCudaFactoryMatchesTheCpuCache() {
        ModelShape shape = new ModelShape(2, 8, 2, 64);
        SplittableRandom r = new SplittableRandom(17);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            var factory = new CudaHeadStoreFactory(dev, KvDType.F16, 16, 256);
            StreamingLlmPolicy.Config policy = StreamingLlmPolicy.Config.defaults(Budget.tokens(600));
            try (KvCache gpu = KvCache.builder(shape)
                            .store(factory)
                            .policy(new StreamingLlmPolicy(policy))
                            .build();
                    KvCache cpu = KvCache.builder(shape)
                            .dtype(KvDType.F16)
                            .policy(new StreamingLlmPolicy(policy))
                            .build()) {
                assertEquals("cuda-f16", gpu.storage());
                int kv = shape.kvRowFloats();
                int qRow = shape.queryRowFloats();
                int prefill = 500;
                for (int step = 0; step < 8; step++) {
                    int tokens = step == 0 ? prefill : 40;
                    float[] k = new float[tokens * kv];
                    float[] v = new float[tokens * kv];
                    float[] q = new float[tokens * qRow];
                    for (int i = 0; i < k.length; i++) {
                        k[i] = (float) (r.nextDouble() * 2 - 1);
                        v[i] = (float) (r.nextDouble() * 2 - 1);
                    }
                    for (int i = 0; i < q.length; i++) {
                        q[i] = (float) (r.nextDouble() * 4 - 2);
                    }
                    for (int layer = 0; layer < shape.layers(); layer++) {
                        gpu.append(layer, k, 0, v, 0, tokens);
                        cpu.append(layer, k, 0, v, 0, tokens);
                        float[] og = new float[tokens * qRow];
                        float[] oc = new float[tokens * qRow];
                        gpu.attend(layer, q, 0, tokens, og, 0);
                        cpu.attend(layer, q, 0, tokens, oc, 0);
                        double worst = 0;
                        for (int i = 0; i < og.length; i++) {
                            worst = Math.max(worst, Math.abs(og[i] - oc[i]));
                        }
                        assertTrue(worst < 1e-5, "step " + step + " layer " + layer + ": " + worst);
                    }
                    if (step == 0) {
                        gpu.endPrefill();
                        cpu.endPrefill();
                    }
                    for (int h = 0; h < shape.kvHeads(); h++) {
                        assertEquals(cpu.retainedTokens(0, h), gpu.retainedTokens(0, h));
                    }
                }
                assertTrue(gpu.bytesHeld() > cpu.bytesHeld(), "device bytes are counted on top of the host mirror");
            }
            assertTrue(dev.bytesAllocated() >= 0);
        }
    }
}
