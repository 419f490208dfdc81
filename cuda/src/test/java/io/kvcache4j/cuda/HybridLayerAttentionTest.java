package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.PagedHeadStore;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * HGCA-style hybrid attention through {@link CudaLayerAttention}: dense attention over the device
 * stores merged in the combine launch with a CPU partial over other rows equals attention over all
 * rows (emulated device).
 */
class HybridLayerAttentionTest {

    /** {@code maxPartialBytes} 10 000: one token per launch, so the batch runs in slices. */
    @ParameterizedTest
    @ValueSource(longs = {CudaLayerAttention.MAX_PARTIAL_BYTES, 10_000})
    void denseOnTheDevicePlusSparseOnTheCpuEqualsTheUnion(long maxPartialBytes) {
        ModelShape shape = new ModelShape(1, 8, 2, 64);
        int d = shape.headDim(), dense = 900, sparse = 250, tokens = 3;
        SplittableRandom r = new SplittableRandom(8);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            HeadStore[] gpu = new HeadStore[2];
            HeadStore[] cpu = new HeadStore[2];
            HeadStore[] all = new HeadStore[2];
            float[] k = new float[d];
            float[] v = new float[d];
            for (int h = 0; h < 2; h++) {
                gpu[h] = new CudaHeadStore(dev, KvDType.F16, d, 16);
                cpu[h] = new PagedHeadStore(KvDType.F16, d, 16, AttentionKernels.get());
                all[h] = new PagedHeadStore(KvDType.F16, d, 16, AttentionKernels.get());
                for (int s = 0; s < dense + sparse; s++) {
                    for (int i = 0; i < d; i++) {
                        k[i] = (float) (r.nextDouble() * 2 - 1);
                        v[i] = (float) (r.nextDouble() * 2 - 1);
                    }
                    (s < dense ? gpu[h] : cpu[h]).append(k, 0, v, 0, d, 1);
                    all[h].append(k, 0, v, 0, d, 1);
                }
            }
            float[] q = new float[tokens * shape.queryRowFloats()];
            for (int i = 0; i < q.length; i++) {
                q[i] = (float) (r.nextDouble() * 6 - 3);
            }
            float scale = (float) (1 / Math.sqrt(d));
            int qh = shape.queryHeads();
            float[] sparseOut = new float[q.length];
            float[] sparseLse = new float[tokens * qh];
            run(
                    LayerAttention.cpu(new LayerContext(shape, 0, cpu, null), AttentionKernels.get()),
                    shape,
                    tokens,
                    q,
                    scale,
                    sparseOut,
                    sparseLse,
                    sparse);
            float[] out = new float[q.length];
            float[] lse = new float[tokens * qh];
            CudaLayerAttention closed;
            try (CudaLayerAttention att = new CudaLayerAttention(dev, new LayerContext(shape, 0, gpu, null), 256)) {
                closed = att;
                att.maxPartialBytes = maxPartialBytes;
                LayerBatch b = batch(shape, tokens, q, scale, out, lse, dense);
                att.attend(b, sparseOut, sparseLse);
            }
            closed.close();
            var e = org.junit.jupiter.api.Assertions.assertThrows(
                    IllegalStateException.class,
                    () -> closed.attend(batch(shape, tokens, q, scale, new float[q.length], null, dense)));
            org.junit.jupiter.api.Assertions.assertEquals("layer attention is closed", e.getMessage());
            float[] want = new float[q.length];
            float[] wantLse = new float[tokens * qh];
            run(
                    LayerAttention.cpu(new LayerContext(shape, 0, all, null), AttentionKernels.get()),
                    shape,
                    tokens,
                    q,
                    scale,
                    want,
                    wantLse,
                    dense + sparse);
            var got = new KernelHarness.Result(out, lse);
            var ref = new KernelHarness.Result(want, wantLse);
            assertTrue(
                    KernelHarness.relativeError(got, ref, d) < 1e-5, "rel " + KernelHarness.relativeError(got, ref, d));
            assertTrue(KernelHarness.lseError(got, ref) < 1e-5);
            for (int h = 0; h < 2; h++) {
                gpu[h].close();
                cpu[h].close();
                all[h].close();
            }
        }
    }

    private static LayerBatch batch(
            ModelShape shape, int tokens, float[] q, float scale, float[] out, float[] lse, int visible) {
        LayerBatch b = new LayerBatch(shape, tokens).set(0, tokens, q, 0, scale, out, 0, lse, 0, null, null);
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < shape.kvHeads(); h++) {
                b.setVisible(t, h, visible);
            }
        }
        return b;
    }

    private static void run(
            LayerAttention a, ModelShape shape, int tokens, float[] q, float scale, float[] out, float[] lse, int vis) {
        a.attend(batch(shape, tokens, q, scale, out, lse, vis));
    }
}
