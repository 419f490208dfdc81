package io.kvcache4j.hybrid;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.FullPolicy;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.cuda.CudaHeadStoreFactory;
import io.kvcache4j.cuda.CudaLayerAttention;
import io.kvcache4j.cuda.EmulatedDevice;
import io.kvcache4j.cuda.PinnedHeadStore;
import io.kvcache4j.eviction.H2OPolicy;
import io.kvcache4j.eviction.StreamingLlmPolicy;
import java.util.SplittableRandom;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * HeadInfer on the GPU, on the kernels' CPU twin: bit-identical to the all-resident {@code cuda-f16}
 * cache with and without eviction, the next layer's heads prefetched on the transfer stream (which the
 * emulated device runs only when an event recorded after them is awaited, so a layer that read its
 * staging slot without waiting would read stale rows here), device memory returned on close.
 */
class CudaHeadInferTest {
    static final ModelShape SHAPE = new ModelShape(3, 8, 4, 32);

    @ParameterizedTest(name = "policy {0}, resident {1}, staging buffers {2}")
    @CsvSource({
        "full,0,0",
        "full,1,0",
        "full,4,0",
        "streaming,0,0",
        "streaming,2,0",
        "h2o,1,0",
        "full,0,2",
        "full,1,4",
        "streaming,0,2",
        "streaming,1,4",
        "full,0,6"
    })
    void outputsAreBitIdenticalToTheAllResidentGpuCache(String policyName, int resident, int staging) {
        long seed = TestSeeds.seed("headinfer-cuda-" + policyName + "-" + resident + "-" + staging);
        SplittableRandom r = TestSeeds.random(seed);
        Supplier<EvictionPolicy> policy = switch (policyName) {
            case "h2o" -> () -> new H2OPolicy(H2OPolicy.Config.defaults(Budget.tokens(64)));
            case "streaming" -> () -> new StreamingLlmPolicy(StreamingLlmPolicy.Config.defaults(Budget.tokens(64)));
            default -> () -> FullPolicy.INSTANCE;
        };
        try (EmulatedDevice device = new EmulatedDevice()) {
            CudaHeadInferFactory factory = new CudaHeadInferFactory(device, new HeadInferConfig(resident, staging, 16));
            CudaHeadStoreFactory allResident =
                    new CudaHeadStoreFactory(device, KvDType.F16, 16, CudaLayerAttention.DEFAULT_CHUNK);
            try (KvCache exact = KvCache.builder(SHAPE)
                            .store(allResident)
                            .policy(policy.get())
                            .build();
                    KvCache offload = KvCache.builder(SHAPE)
                            .store(factory)
                            .policy(policy.get())
                            .build()) {
                assertEquals("headinfer-cuda", offload.storage());
                for (int chunk : new int[] {100, 50}) {
                    step(r, exact, offload, chunk, seed, device, resident);
                }
                exact.endPrefill();
                offload.endPrefill();
                for (int s = 0; s < 30; s++) {
                    step(r, exact, offload, 1, seed, device, resident);
                }
                for (int l = 0; l < SHAPE.layers(); l++) {
                    for (int h = 0; h < SHAPE.kvHeads(); h++) {
                        assertEquals(exact.retainedTokens(l, h), offload.retainedTokens(l, h));
                    }
                }
                long[] counts = factory.prefetchCounts();
                System.out.printf(
                        "[headinfer-cuda] policy %s resident %d/%d, staging %d: %d heads found prefetched, %d copied whole at"
                                + " their turn, %d bytes transferred, staging %d device bytes, cache %d bytes"
                                + " (all-resident %d)%n",
                        policyName,
                        resident,
                        SHAPE.kvHeads(),
                        staging,
                        counts[0],
                        counts[1],
                        factory.bytesTransferred(),
                        factory.stagingBytes(),
                        offload.bytesHeld(),
                        exact.bytesHeld());
                // (a compaction, which streaming makes at every step, leaves the prefetched copy stale: the head is
                // then copied whole at its turn; score-reporting batches run on the CPU and stage nothing)
                if (resident < SHAPE.kvHeads() && policyName.equals("full")) {
                    assertTrue(
                            counts[0] > counts[1],
                            "decode steps find their heads prefetched: " + counts[0] + " prefetched, " + counts[1]
                                    + " copied whole");
                }
            }
            assertEquals(0, device.bytesAllocated(), "closing the caches frees every device byte, staging included");
            assertEquals(0, device.hostBytesAllocated(), "and every pinned host byte");
        }
    }

    private static void step(
            SplittableRandom r,
            KvCache exact,
            KvCache offload,
            int tokens,
            long seed,
            EmulatedDevice device,
            int resident) {
        for (int l = 0; l < SHAPE.layers(); l++) {
            float[] k = TestSeeds.floats(r, tokens * SHAPE.kvRowFloats(), 2f);
            float[] v = TestSeeds.floats(r, tokens * SHAPE.kvRowFloats(), 1f);
            float[] q = TestSeeds.floats(r, tokens * SHAPE.queryRowFloats(), 2f);
            exact.append(l, k, 0, v, 0, tokens);
            offload.append(l, k, 0, v, 0, tokens);
            float[] a = new float[q.length];
            float[] b = new float[q.length];
            float[] la = new float[tokens * SHAPE.queryHeads()];
            float[] lb = new float[tokens * SHAPE.queryHeads()];
            exact.attendPartial(l, q, 0, tokens, a, 0, la, 0);
            offload.attendPartial(l, q, 0, tokens, b, 0, lb, 0);
            assertArrayEquals(a, b, "outputs of layer " + l + " bit for bit, seed=" + seed);
            assertArrayEquals(la, lb, "lse of layer " + l + " bit for bit, seed=" + seed);
        }
    }

    /** The next layer's copy is queued on the transfer stream and still pending when a layer returns. */
    @Test
    void theNextLayersHeadsArePrefetchedWhileTheCurrentOneComputes() {
        long seed = TestSeeds.seed("headinfer-cuda-async");
        SplittableRandom r = TestSeeds.random(seed);
        try (EmulatedDevice device = new EmulatedDevice()) {
            CudaHeadInferFactory factory = new CudaHeadInferFactory(device, new HeadInferConfig(0, 0, 16));
            try (KvCache cache = KvCache.builder(SHAPE).store(factory).build()) {
                float[] q = TestSeeds.floats(r, SHAPE.queryRowFloats(), 1f);
                float[] out = new float[q.length];
                for (int s = 0; s < 4; s++) {
                    for (int l = 0; l < SHAPE.layers(); l++) {
                        float[] k = TestSeeds.floats(r, SHAPE.kvRowFloats(), 1f);
                        float[] v = TestSeeds.floats(r, SHAPE.kvRowFloats(), 1f);
                        cache.append(l, k, 0, v, 0, 1);
                        cache.attend(l, q, 0, 1, out, 0);
                        // two copies (keys, values) per offloaded head of the next layer, once it holds rows
                        if (s > 0 || l == SHAPE.layers() - 1) {
                            assertEquals(2 * SHAPE.kvHeads(), device.pendingTransfers(), "step " + s + " layer " + l);
                        }
                    }
                }
                long[] counts = factory.prefetchCounts();
                // step 0: each layer's prefetch found it empty, so its first turn copies it whole; later turns find
                // the prefetch and top it up with the token appended since
                assertEquals(SHAPE.kvHeads() * 3L * SHAPE.layers(), counts[0], "turns of steps 1-3");
                assertEquals(SHAPE.kvHeads() * (long) SHAPE.layers(), counts[1], "turns of step 0");
                // two slots of 256 rows per head (keys and values, f16, d 32)
                assertEquals(2L * SHAPE.kvHeads() * 2 * 256 * 2 * SHAPE.headDim(), factory.stagingBytes());
            }
            assertEquals(0, device.bytesAllocated());
        }
    }

    /**
     * Slots of one head (HeadInfer's granularity): a layer attends head by head, the next head's copy
     * pending while one computes, and the device holds two heads' rows.
     */
    @Test
    void slotsOfOneHeadStageHeadByHead() {
        long seed = TestSeeds.seed("headinfer-cuda-one-head");
        SplittableRandom r = TestSeeds.random(seed);
        try (EmulatedDevice device = new EmulatedDevice()) {
            CudaHeadInferFactory factory = new CudaHeadInferFactory(device, new HeadInferConfig(0, 2, 16));
            try (KvCache cache = KvCache.builder(SHAPE).store(factory).build()) {
                float[] q = TestSeeds.floats(r, SHAPE.queryRowFloats(), 1f);
                float[] out = new float[q.length];
                int prompt = 300;
                for (int l = 0; l < SHAPE.layers(); l++) {
                    float[] k = TestSeeds.floats(r, prompt * SHAPE.kvRowFloats(), 1f);
                    cache.append(l, k, 0, k, 0, prompt);
                    float[] pq = TestSeeds.floats(r, prompt * SHAPE.queryRowFloats(), 1f);
                    cache.attend(l, pq, 0, prompt, new float[pq.length], 0);
                }
                for (int s = 0; s < 3; s++) {
                    for (int l = 0; l < SHAPE.layers(); l++) {
                        float[] k = TestSeeds.floats(r, SHAPE.kvRowFloats(), 1f);
                        cache.append(l, k, 0, k, 0, 1);
                        cache.attend(l, q, 0, 1, out, 0);
                        // the next layer's first head (keys, values) is on its way
                        assertEquals(2, device.pendingTransfers(), "step " + s + " layer " + l);
                    }
                }
                // two slots of one head: 304 rows + a sixteenth in 256-row steps = 512 rows of keys and values
                assertEquals(2L * 2 * 512 * 2 * SHAPE.headDim(), factory.stagingBytes());
                long[] counts = factory.prefetchCounts();
                // every decode turn found its head; in the prefill, heads 1-3 of each layer were prefetched while the
                // one before computed (head 0 of a layer was prefetched before that layer's rows existed)
                assertEquals(
                        3L * SHAPE.layers() * SHAPE.kvHeads() + (long) SHAPE.layers() * (SHAPE.kvHeads() - 1),
                        counts[0]);
                assertEquals(SHAPE.layers(), counts[1]);
            }
            assertEquals(0, device.bytesAllocated());
        }
    }

    @Test
    void pinnedStoresCheckTheirArguments() {
        try (EmulatedDevice device = new EmulatedDevice();
                PinnedHeadStore s = new PinnedHeadStore(device, KvDType.F16, 32, 16)) {
            float[] row = new float[32];
            s.append(row, 0, row, 0, 32, 1);
            assertEquals(2L * 256 * 64, s.bytesHeld(), "256 rows of keys and of values, 64 bytes each");
            float[] many = new float[32 * 1000];
            s.append(many, 0, many, 0, 32, 1000);
            // 1001 rows + an eighth, in 256-row steps: 1280 rows
            assertEquals(2L * 1280 * 64, s.bytesHeld());
            s.compact(1, new int[0], 0, 1);
            assertEquals(1, s.count());
            var e = assertThrows(IllegalArgumentException.class, () -> s.transfer(0, 0, 0, 2, device.newEvent()));
            assertEquals("transfer of rows [0, 2) out of range for 1 rows", e.getMessage());
            var c = assertThrows(IllegalArgumentException.class, () -> s.compact(0, new int[] {3}, 1, 1));
            assertEquals("compact: source 3 of slot 0 out of range [0, 1)", c.getMessage());
            var n = assertThrows(IllegalArgumentException.class, () -> s.append(row, 0, row, 0, 32, -1));
            assertEquals("tokens must be >= 0, was -1", n.getMessage());
            var t = assertThrows(
                    IllegalArgumentException.class, () -> new PinnedHeadStore(device, KvDType.F32, 32, 16));
            assertEquals("pinned stores keep f16 or bf16 rows, not F32", t.getMessage());
            s.close();
            assertThrows(IllegalStateException.class, () -> s.append(row, 0, row, 0, 32, 1));
            assertEquals(0, device.hostBytesAllocated(), "close returned the pinned rows");
            var buffer = device.allocHost(64);
            device.freeHost(buffer);
            var twice = assertThrows(IllegalArgumentException.class, () -> device.freeHost(buffer));
            assertTrue(twice.getMessage().startsWith("not a live pinned buffer of this device (freed already?)"));
        }
    }

    @Test
    void withoutAGpuTheProviderSaysWhy() {
        org.junit.jupiter.api.Assumptions.assumeTrue(
                io.kvcache4j.cuda.CudaBackends.available().isEmpty(), "a GPU is present: the refusal does not apply");
        assertTrue(io.kvcache4j.store.HeadStores.names().contains("headinfer-cuda"));
        var e = assertThrows(IllegalStateException.class, () -> new Providers.HeadInferCuda().factory(16));
        assertTrue(e.getMessage().startsWith("storage 'headinfer-cuda' needs a CUDA GPU: "), e.getMessage());
        assertTrue(e.getMessage().endsWith("; use 'headinfer' for a fast tier in host memory"), e.getMessage());
    }

    @Test
    void badConfigurationsNameTheValueAndTheRange() {
        try (EmulatedDevice device = new EmulatedDevice()) {
            var odd = assertThrows(
                    IllegalArgumentException.class,
                    () -> new CudaHeadInferFactory(device, new HeadInferConfig(0, 3, 16)));
            assertEquals(
                    "stagingBuffers must be 0 (a layer's offloaded heads per slot) or even (two slots of stagingBuffers/2"
                            + " heads) for the GPU schedule, was 3",
                    odd.getMessage());
            CudaHeadInferFactory tooLarge = new CudaHeadInferFactory(device, new HeadInferConfig(1, 8, 16));
            var large = assertThrows(
                    IllegalArgumentException.class,
                    () -> KvCache.builder(SHAPE).store(tooLarge).build());
            assertEquals(
                    "stagingBuffers must be 0 or even in [2, 6] (two slots of at most the 3 offloaded heads of a"
                            + " layer), was 8",
                    large.getMessage());
            CudaHeadInferFactory tooMany = new CudaHeadInferFactory(device, new HeadInferConfig(5, 0, 16));
            var heads = assertThrows(
                    IllegalArgumentException.class,
                    () -> KvCache.builder(SHAPE).store(tooMany).build());
            assertEquals("residentHeads must be in [0, 4] (the model's KV heads), was 5", heads.getMessage());
            assertEquals(0, device.bytesAllocated());
        }
    }
}
