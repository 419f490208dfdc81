package io.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.Partial;
import io.kvcache4j.testing.OnHeapStore;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The storage seam from outside the kernels: {@link OnHeapStore} (its own rows, its own scoring,
 * the public online-softmax protocol; optionally its own layer-level source) gives the same
 * attention as the exact off-heap store; selections (prefix, bitmap, list) attend exactly the
 * selected rows; an external partial merges exactly into a running pass.
 */
class HeadStoreSeamTest {

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void aStoreFromOutsideTheKernelsGivesTheSameAttention(boolean ownLayerSource) {
        long seed = TestSeeds.seed("head-store-seam-" + ownLayerSource);
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(2, 8, 2, 24);
        int tokens = 77;
        float[] k = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 1f);
        float[] v = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 1f);
        float[] q = TestSeeds.floats(r, tokens * shape.queryRowFloats(), 1f);
        float[] exact = new float[q.length];
        float[] onHeap = new float[q.length];
        float[] lseExact = new float[tokens * shape.queryHeads()];
        float[] lseOnHeap = new float[tokens * shape.queryHeads()];
        try (KvCache a = KvCache.builder(shape).dtype(KvDType.F32).build();
                KvCache b = KvCache.builder(shape)
                        .store(OnHeapStore.factory(1, ownLayerSource))
                        .build()) {
            assertEquals(ownLayerSource ? "onheap-g1-layer" : "onheap-g1", b.storage());
            for (int l = 0; l < 2; l++) {
                a.append(l, k, 0, v, 0, tokens);
                b.append(l, k, 0, v, 0, tokens);
                a.attendPartial(l, q, 0, tokens, exact, 0, lseExact, 0);
                b.attendPartial(l, q, 0, tokens, onHeap, 0, lseOnHeap, 0);
                for (int i = 0; i < q.length; i++) {
                    assertEquals(exact[i], onHeap[i], 2e-6, "layer " + l + " element " + i + " seed=" + seed);
                }
                for (int i = 0; i < lseExact.length; i++) {
                    assertEquals(lseExact[i], lseOnHeap[i], 2e-5, "layer " + l + " lse " + i + " seed=" + seed);
                }
            }
            assertEquals(2L * 2 * tokens * 24 * 8, b.bytesHeld(), "f32 keys and values on the heap");
        }
    }

    /** A layer source that holds memory of its own (AutoCloseable) is closed once, after the stores, with its cache. */
    @Test
    void layerSourcesThatOwnMemoryCloseWithTheirCache() {
        ModelShape shape = new ModelShape(3, 4, 2, 16);
        HeadStoreFactory exact = HeadStoreFactory.exact(KvDType.F16, 16);
        java.util.List<String> events = new java.util.ArrayList<>();
        HeadStoreFactory watched = new HeadStoreFactory() {
            @Override
            public HeadStore create(Spec spec) {
                return exact.create(spec);
            }

            @Override
            public io.kvcache4j.attention.LayerAttention layerAttention(io.kvcache4j.attention.LayerContext context) {
                io.kvcache4j.attention.LayerAttention cpu = exact.layerAttention(context);
                final class Owning implements io.kvcache4j.attention.LayerAttention, AutoCloseable {
                    @Override
                    public void attend(io.kvcache4j.attention.LayerBatch batch) {
                        cpu.attend(batch);
                    }

                    @Override
                    public boolean reportsScores() {
                        return cpu.reportsScores();
                    }

                    @Override
                    public void close() {
                        events.add("closed layer " + context.layer() + ", its stores held "
                                + context.store(0).count() + " tokens then");
                    }
                }
                return new Owning();
            }

            @Override
            public String name() {
                return "watched";
            }
        };
        KvCache cache = KvCache.builder(shape).store(watched).build();
        float[] row = new float[shape.kvRowFloats()];
        float[] q = new float[shape.queryRowFloats()];
        for (int l = 0; l < shape.layers(); l++) {
            cache.append(l, row, 0, row, 0, 1);
            cache.attend(l, q, 0, 1, new float[q.length], 0);
        }
        assertTrue(events.isEmpty(), events.toString());
        cache.close();
        cache.close();
        // the stores are closed first (a closed paged store reports no rows)
        assertEquals(
                java.util.List.of(
                        "closed layer 0, its stores held 0 tokens then",
                        "closed layer 1, its stores held 0 tokens then",
                        "closed layer 2, its stores held 0 tokens then"),
                events);
    }

    @Test
    void storageKindsAreRegisteredByName() {
        assertEquals(java.util.List.of("f16", "bf16", "f32", "onheap"), HeadStores.names());
        assertEquals("f16", HeadStores.factory("F16", 16).name());
        try (KvCache cache = KvCache.builder(new ModelShape(1, 2, 1, 8))
                .store(HeadStores.factory("onheap", 16))
                .build()) {
            cache.append(0, new float[8], 0, new float[8], 0, 1);
            assertEquals(64, cache.bytesHeld(), "one f32 key and value of 8 elements on the heap");
        }
        var e = assertThrows(IllegalArgumentException.class, () -> HeadStores.factory("int3", 16));
        assertEquals("unknown storage 'int3'; installed: f16, bf16, f32, onheap", e.getMessage());
    }

    @Test
    void selectionsAttendExactlyTheSelectedSlots() {
        long seed = TestSeeds.seed("selections");
        SplittableRandom r = TestSeeds.random(seed);
        int d = 40;
        int group = 4;
        int tokens = 300;
        float scale = (float) (1 / Math.sqrt(d));
        try (PagedHeadStore paged = new PagedHeadStore(KvDType.F32, d, 32, AttentionKernels.get())) {
            OnHeapStore onHeap = new OnHeapStore(d, 1, group);
            float[] k = TestSeeds.floats(r, tokens * d, 1f);
            float[] v = TestSeeds.floats(r, tokens * d, 1f);
            paged.append(k, 0, v, 0, d, tokens);
            onHeap.append(k, 0, v, 0, d, tokens);
            float[] q = TestSeeds.floats(r, group * d, 2f);
            for (int trial = 0; trial < 20; trial++) {
                long[] bits = new long[(tokens + 63) / 64];
                int[] list = new int[tokens];
                int n = 0;
                double density = r.nextDouble();
                for (int s = 0; s < tokens; s++) {
                    if (r.nextDouble() < density) {
                        bits[s >>> 6] |= 1L << s;
                        list[n++] = s;
                    }
                }
                SlotSelection byBitmap = new SlotSelection().bitmap(bits, tokens);
                SlotSelection byList = new SlotSelection().list(list, n);
                assertEquals(n, byBitmap.size());
                double[][] want = reference(q, k, v, list, n, group, d, scale);
                for (HeadStore store : new HeadStore[] {paged, onHeap}) {
                    for (SlotSelection sel : new SlotSelection[] {byBitmap, byList}) {
                        GroupAttention st = new GroupAttention(group, d);
                        st.begin(q, 0, scale);
                        store.attend(st, sel);
                        Partial p = new Partial(group, d);
                        st.finish(p, 0);
                        for (int h = 0; h < group; h++) {
                            assertEquals(want[h][d], p.lse()[h], 1e-4, "lse, trial " + trial + " seed=" + seed);
                            for (int i = 0; i < d; i++) {
                                assertEquals(
                                        want[h][i],
                                        p.out()[h * d + i],
                                        2e-5,
                                        store.getClass().getSimpleName() + " " + sel.kind() + " trial " + trial
                                                + " seed=" + seed);
                            }
                        }
                    }
                }
            }
            var e = assertThrows(
                    IllegalArgumentException.class,
                    () -> paged.attend(new GroupAttention(group, d), new SlotSelection().prefix(tokens + 1)));
            assertEquals("selection reaches slot 300 but the store holds 300", e.getMessage());
            var order =
                    assertThrows(IllegalArgumentException.class, () -> new SlotSelection().list(new int[] {4, 4}, 2));
            assertTrue(order.getMessage().contains("strictly increasing"), order.getMessage());
        }
    }

    @Test
    void anExternalPartialMergesExactlyIntoARunningPass() {
        long seed = TestSeeds.seed("merge-partial");
        SplittableRandom r = TestSeeds.random(seed);
        int d = 32;
        int group = 2;
        int tokens = 100;
        float scale = (float) (1 / Math.sqrt(d));
        try (PagedHeadStore store = new PagedHeadStore(KvDType.F32, d, 16, AttentionKernels.get())) {
            float[] k = TestSeeds.floats(r, tokens * d, 1f);
            float[] v = TestSeeds.floats(r, tokens * d, 1f);
            store.append(k, 0, v, 0, d, tokens);
            float[] q = TestSeeds.floats(r, group * d, 2f);
            int[] first = new int[60];
            int[] second = new int[40];
            for (int i = 0; i < 60; i++) {
                first[i] = i;
            }
            for (int i = 0; i < 40; i++) {
                second[i] = 60 + i;
            }
            // The second part as a finished partial, merged into a pass over the first part.
            GroupAttention st = new GroupAttention(group, d);
            st.begin(q, 0, scale);
            store.attend(st, new SlotSelection().list(second, 40));
            Partial external = new Partial(group, d);
            st.finish(external, 0);
            st.begin(q, 0, scale);
            store.attend(st, new SlotSelection().list(first, 60));
            st.mergePartial(external.out(), 0, external.lse(), 0);
            Partial merged = new Partial(group, d);
            st.finish(merged, 0);
            int[] all = new int[tokens];
            for (int i = 0; i < tokens; i++) {
                all[i] = i;
            }
            double[][] want = reference(q, k, v, all, tokens, group, d, scale);
            for (int h = 0; h < group; h++) {
                assertEquals(want[h][d], merged.lse()[h], 1e-5, "lse seed=" + seed);
                for (int i = 0; i < d; i++) {
                    assertEquals(want[h][i], merged.out()[h * d + i], 1e-5, "head " + h + " seed=" + seed);
                }
            }
        }
    }

    /** Float64 attention over the listed rows: {@code [h][0..d)} output, {@code [h][d]} lse. */
    static double[][] reference(float[] q, float[] k, float[] v, int[] slots, int n, int group, int d, float scale) {
        double[][] res = new double[group][d + 1];
        for (int h = 0; h < group; h++) {
            double[] logit = new double[n];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int i = 0; i < d; i++) {
                    s += (double) (q[h * d + i] * scale) * k[slots[j] * d + i];
                }
                logit[j] = s;
                max = Math.max(max, s);
            }
            double sum = 0;
            for (int j = 0; j < n; j++) {
                sum += Math.exp(logit[j] - max);
            }
            for (int j = 0; j < n; j++) {
                double p = Math.exp(logit[j] - max) / sum;
                for (int i = 0; i < d; i++) {
                    res[h][i] += p * v[slots[j] * d + i];
                }
            }
            res[h][d] = n == 0 ? Double.NEGATIVE_INFINITY : max + Math.log(sum);
        }
        return res;
    }
}
