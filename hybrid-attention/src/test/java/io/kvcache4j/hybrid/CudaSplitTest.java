package io.kvcache4j.hybrid;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.cuda.CudaBackends;
import io.kvcache4j.cuda.Device;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Split storage with its fast tier on a device ({@link SplitFactory#onDevice}), on the CPU twin of the
 * kernels: the device copy holds exactly the host fast rows through appends and compaction, and the
 * layer source (dense part on the device, sparse part on the CPU, merged on the device) equals the
 * host-only split's layer source.
 */
class CudaSplitTest {

    @ParameterizedTest
    @ValueSource(strings = {"hgca", "retrieval"})
    void fastTierOnTheDeviceGivesTheHostSplitsAttention(String kind) {
        long seed = 9_117L + kind.length();
        System.out.println("[seed] cuda-split " + kind + " seed=" + seed);
        SplittableRandom r = new SplittableRandom(seed);
        ModelShape shape = new ModelShape(1, 8, 2, 64);
        int d = shape.headDim();
        SplitFactory hostOnly = kind.equals("hgca")
                ? SplitFactory.hgca(HgcaConfig.defaults().withWindow(4, 40).withPageTokens(16))
                : SplitFactory.retrieval(RetrievalConfig.defaults().withPageTokens(16));
        var backend = CudaBackends.emulated();
        try (Device dev = backend.device()) {
            SplitFactory onDevice = hostOnly.onDevice(dev);
            assertEquals(kind + "-cuda", onDevice.name());
            HeadStore[][] stores = new HeadStore[2][shape.kvHeads()];
            HeadStoreFactory[] factories = {hostOnly, onDevice};
            for (int f = 0; f < 2; f++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    stores[f][h] = factories[f].create(new HeadStoreFactory.Spec(shape, 0, h));
                }
            }
            LayerAttention host = hostOnly.layerAttention(new LayerContext(shape, 0, stores[0], null));
            LayerAttention device = onDevice.layerAttention(new LayerContext(shape, 0, stores[1], null));
            for (int n : new int[] {300, 1, 1, 1, 60, 1}) {
                append(stores, n, d, r);
                compare(host, device, shape, stores[0], r, 3);
                for (HeadStore s : stores[1]) {
                    assertCopyHoldsTheFastRows((SplitHeadStore) s, d);
                }
            }
            // a compaction re-places every kept row (what a policy without scores would do)
            int count = stores[0][0].count();
            int[] keep = new int[count - 50];
            for (int j = 0; j < keep.length; j++) {
                keep[j] = j < 100 ? j : j + 50;
            }
            for (HeadStore[] side : stores) {
                for (HeadStore s : side) {
                    s.compact(
                            100, java.util.Arrays.copyOfRange(keep, 100, keep.length), keep.length - 100, keep.length);
                }
            }
            for (HeadStore s : stores[1]) {
                assertCopyHoldsTheFastRows((SplitHeadStore) s, d);
            }
            compare(host, device, shape, stores[0], r, 2);
            ((AutoCloseable) device).close();
            ((AutoCloseable) device).close();
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
            var closedError = assertThrows(IllegalStateException.class, () -> device.attend(after));
            assertEquals("layer attention is closed", closedError.getMessage());
            for (HeadStore[] side : stores) {
                for (HeadStore s : side) {
                    s.close();
                }
            }
            assertEquals(0, dev.bytesAllocated(), "the device copies are freed with their stores");
            assertEquals(0, dev.hostBytesAllocated(), "and their pinned staging");
        } catch (Exception e) {
            throw new AssertionError(e);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"hgca-cuda", "retrieval-cuda"})
    void withoutAGpuTheProviderSaysWhy(String name) {
        org.junit.jupiter.api.Assumptions.assumeTrue(
                CudaBackends.available().isEmpty(), "a GPU is present: the refusal does not apply");
        Providers.OnDevice p = name.equals("hgca-cuda") ? new Providers.HgcaCuda() : new Providers.RetrievalCuda();
        assertEquals(name, p.name());
        var e = assertThrows(IllegalStateException.class, () -> p.factory(16));
        assertTrue(e.getMessage().startsWith("storage '" + name + "' needs a CUDA GPU: "), e.getMessage());
        assertTrue(e.getMessage().endsWith("for a fast tier in host memory"), e.getMessage());
    }

    private static void append(HeadStore[][] stores, int n, int d, SplittableRandom r) {
        float[] k = new float[n * d];
        float[] v = new float[n * d];
        for (int h = 0; h < stores[0].length; h++) {
            for (int i = 0; i < k.length; i++) {
                k[i] = (float) (r.nextGaussian() * (1 + (i % d) / 16.0));
                v[i] = (float) r.nextGaussian();
            }
            for (HeadStore[] side : stores) {
                side[h].append(k, 0, v, 0, d, n);
            }
        }
    }

    /** The copy's rows are the store's sinks then its recent window, exactly. */
    private static void assertCopyHoldsTheFastRows(SplitHeadStore s, int d) {
        HeadStore copy = s.fastCopy();
        int rows = s.fastRows();
        assertEquals(rows, copy.count());
        int sinks = Math.min(s.count(), s.sinks);
        float[] a = new float[d];
        float[] b = new float[d];
        for (int row = 0; row < rows; row++) {
            int slot = row < sinks ? row : s.count() - (rows - row);
            s.readKey(slot, a, 0);
            copy.readKey(row, b, 0);
            assertEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(b), "key row " + row);
            s.readValue(slot, a, 0);
            copy.readValue(row, b, 0);
            assertEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(b), "value row " + row);
        }
    }

    private static void compare(
            LayerAttention host,
            LayerAttention device,
            ModelShape shape,
            HeadStore[] stores,
            SplittableRandom r,
            int tokens) {
        float[] q = new float[tokens * shape.queryRowFloats()];
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
                    int count = stores[h].count();
                    b.setVisible(t, h, t == tokens - 1 ? count : Math.max(0, count - 30 * (t + 1)));
                }
            }
            (k == 0 ? host : device).attend(b);
        }
        double worst = 0;
        for (int row = 0; row < lse[0].length; row++) {
            double max = 1e-30;
            double diff = 0;
            for (int i = 0; i < shape.headDim(); i++) {
                max = Math.max(max, Math.abs(out[0][row * shape.headDim() + i]));
                diff = Math.max(diff, Math.abs(out[0][row * shape.headDim() + i] - out[1][row * shape.headDim() + i]));
            }
            worst = Math.max(worst, diff / max);
            assertTrue(Math.abs(lse[0][row] - lse[1][row]) < 1e-4, "lse " + lse[0][row] + " vs " + lse[1][row]);
        }
        assertTrue(worst < 1e-5, "relative error " + worst);
    }
}
