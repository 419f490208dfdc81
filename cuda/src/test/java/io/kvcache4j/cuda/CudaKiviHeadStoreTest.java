package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.quantization.CodecKernels;
import io.kvcache4j.quantization.KiviConfig;
import io.kvcache4j.store.HeadStore;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link CudaKiviHeadStore} and {@link CudaKiviLayerAttention} on the emulated device: the device's
 * groups stay byte for byte the host store's through appends of every size and group-granular
 * compaction, and the layer attention (int4 kernel on the groups, f16 kernel on the residual, merged
 * on the device) equals the CPU attention over the host stores of record.
 */
class CudaKiviHeadStoreTest {
    private static final KiviConfig CONFIG = new KiviConfig(4, 32, 64, 32, KvDType.F32);

    @Test
    void layerAttentionOnTheDeviceEqualsTheHostStoresThroughAppendsAndCompaction() {
        long seed = 7_041L;
        System.out.println("[seed] cuda-kivi-store seed=" + seed);
        SplittableRandom r = new SplittableRandom(seed);
        ModelShape shape = new ModelShape(1, 8, 2, 128);
        int d = shape.headDim();
        try (EmulatedDevice dev = new EmulatedDevice()) {
            CudaKiviHeadStore[] stores = new CudaKiviHeadStore[2];
            for (int h = 0; h < 2; h++) {
                stores[h] = new CudaKiviHeadStore(dev, CONFIG, d, 64, CodecKernels.get());
            }
            HeadStore[] hosts = {stores[0].host(), stores[1].host()};
            LayerContext ctx = new LayerContext(shape, 0, stores, null);
            CudaKiviLayerAttention closedAtt;
            try (CudaKiviLayerAttention att = new CudaKiviLayerAttention(dev, ctx)) {
                closedAtt = att;
                LayerAttention cpu =
                        LayerAttention.cpu(new LayerContext(shape, 0, hosts, null), AttentionKernels.get());
                // a prefill, then single tokens across group completions, then a batch
                for (int n : new int[] {300, 1, 1, 40, 1, 97, 1}) {
                    append(stores, n, d, r);
                    compare(att, cpu, shape, stores, r, 3);
                }
                // evict the second and fourth quantized groups and one residual group
                int count = stores[0].count();
                int q = stores[0].quantizedTokens();
                int[] keep = keepAllBut(count, new int[] {32, 96, q + 32}, 32);
                for (CudaKiviHeadStore s : stores) {
                    s.compact(32, java.util.Arrays.copyOfRange(keep, 32, keep.length), keep.length - 32, keep.length);
                    assertEquals(keep.length, s.count());
                    assertGroupsMatch(dev, s);
                }
                compare(att, cpu, shape, stores, r, 2);
                append(stores, 150, d, r);
                compare(att, cpu, shape, stores, r, 4);
                for (CudaKiviHeadStore s : stores) {
                    assertGroupsMatch(dev, s);
                    assertTrue(s.bytesHeld() > s.host().bytesHeld());
                }
            }
            LayerBatch after = new LayerBatch(shape, 1)
                    .set(
                            0,
                            1,
                            new float[shape.queryRowFloats()],
                            0,
                            1f,
                            new float[shape.queryRowFloats()],
                            0,
                            null,
                            0,
                            null,
                            null);
            var closedError = assertThrows(IllegalStateException.class, () -> closedAtt.attend(after));
            assertEquals("layer attention is closed", closedError.getMessage());
            for (CudaKiviHeadStore s : stores) {
                s.close();
                s.close();
                assertThrows(IllegalStateException.class, () -> s.append(new float[d], 0, new float[d], 0, d, 1));
            }
            assertEquals(0, dev.bytesAllocated(), "device memory returns to zero");
            assertEquals(0, dev.hostBytesAllocated(), "pinned host memory too");
        }
    }

    @Test
    void refusesWhatTheKernelCannotRead() {
        try (EmulatedDevice dev = new EmulatedDevice()) {
            var e = assertThrows(
                    IllegalArgumentException.class,
                    () -> new CudaKiviHeadStoreFactory(dev, new KiviConfig(4, 32, 128, 32, KvDType.F16), 64));
            assertTrue(e.getMessage().contains("f32 scales"), e.getMessage());
            e = assertThrows(
                    IllegalArgumentException.class,
                    () -> new CudaKiviHeadStoreFactory(dev, new KiviConfig(2, 32, 128, 32, KvDType.F32), 64));
            assertTrue(e.getMessage().contains("4-bit"), e.getMessage());
            e = assertThrows(
                    IllegalArgumentException.class,
                    () -> new CudaKiviHeadStore(
                            dev, new KiviConfig(4, 48, 96, 32, KvDType.F32), 128, 64, CodecKernels.get()));
            assertTrue(e.getMessage().contains("multiple of 32"), e.getMessage());
            assertEquals(0, dev.bytesAllocated());
        }
    }

    @Test
    void providerTakesKiviOptionsAndChecksThem() {
        var p = new CudaProviders.Int4();
        assertEquals(KvDType.F32, p.config().scaleType());
        var q = (CudaProviders.Int4) p.withOptions("cuda-int4", java.util.Map.of("g", "64", "r", "128"));
        assertEquals(64, q.config().groupTokens());
        var e = assertThrows(
                IllegalArgumentException.class, () -> p.withOptions("cuda-int4", java.util.Map.of("g", "48")));
        assertTrue(e.getMessage().contains("multiple of 32"), e.getMessage());
        e = assertThrows(
                IllegalArgumentException.class, () -> p.withOptions("cuda-int4", java.util.Map.of("scales", "f16")));
        assertTrue(e.getMessage().contains("unknown option 'scales'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> p.withOptions("cuda-int4", java.util.Map.of("r", "40")));
        assertTrue(e.getMessage().startsWith("storage 'cuda-int4': "), e.getMessage());
    }

    private static int[] keepAllBut(int count, int[] groupStarts, int g) {
        java.util.List<Integer> keep = new java.util.ArrayList<>();
        for (int s = 0; s < count; s++) {
            boolean drop = false;
            for (int start : groupStarts) {
                drop |= s >= start && s < start + g;
            }
            if (!drop) {
                keep.add(s);
            }
        }
        return keep.stream().mapToInt(Integer::intValue).toArray();
    }

    private static void append(CudaKiviHeadStore[] stores, int n, int d, SplittableRandom r) {
        float[] k = new float[n * d];
        float[] v = new float[n * d];
        for (CudaKiviHeadStore s : stores) {
            for (int i = 0; i < k.length; i++) {
                k[i] = (float) (r.nextGaussian() * (1 + (i % d) / 16.0));
                v[i] = (float) r.nextGaussian();
            }
            s.append(k, 0, v, 0, d, n);
            assertEquals(s.host().quantizedTokens(), s.quantizedTokens());
            assertEquals(s.count() - s.quantizedTokens(), s.residual().count());
        }
    }

    /** The device's groups read back equal the host store's bytes. */
    private static void assertGroupsMatch(EmulatedDevice dev, CudaKiviHeadStore s) {
        long gb = s.layout().groupBytes();
        int groups = s.quantizedTokens() / s.layout().groupTokens();
        java.lang.foreign.MemorySegment want = java.lang.foreign.MemorySegment.ofArray(new byte[(int) gb]);
        for (int g = 0; g < groups; g++) {
            s.host().copyGroup(g, want, 0);
            java.lang.foreign.MemorySegment got =
                    dev.at(s.groupsPointer() + g * gb).asSlice(0, gb);
            assertEquals(-1, want.mismatch(got), "group " + g);
        }
    }

    private static void compare(
            CudaKiviLayerAttention att,
            LayerAttention cpu,
            ModelShape shape,
            CudaKiviHeadStore[] stores,
            SplittableRandom r,
            int tokens) {
        int qRow = shape.queryRowFloats();
        float[] q = new float[tokens * qRow];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) (r.nextDouble() * 4 - 2);
        }
        float scale = (float) (1 / Math.sqrt(shape.headDim()));
        float[][] out = new float[2][q.length];
        float[][] lse = new float[2][tokens * shape.queryHeads()];
        for (int k = 0; k < 2; k++) {
            LayerBatch b = new LayerBatch(shape, tokens).set(0, tokens, q, 0, scale, out[k], 0, lse[k], 0, null, null);
            for (int t = 0; t < tokens; t++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    // the last token sees everything; earlier ones less, some only quantized slots
                    int count = stores[h].count();
                    b.setVisible(t, h, t == tokens - 1 ? count : Math.max(0, count - 37 * (t + 1) - 90 * t));
                }
            }
            (k == 0 ? att : cpu).attend(b);
        }
        var got = new KernelHarness.Result(out[0], lse[0]);
        var want = new KernelHarness.Result(out[1], lse[1]);
        double rel = KernelHarness.relativeError(got, want, shape.headDim());
        assertTrue(rel < 2e-5, "rel " + rel + " at " + stores[0].count() + " slots");
        assertTrue(KernelHarness.lseError(got, want) < 2e-5, "lse " + KernelHarness.lseError(got, want));
    }
}
