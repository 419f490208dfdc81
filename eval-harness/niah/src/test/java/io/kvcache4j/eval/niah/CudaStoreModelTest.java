package io.kvcache4j.eval.niah;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.cuda.CudaBackend;
import io.kvcache4j.cuda.CudaBackends;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.llama.LlamaEngine;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import io.kvcache4j.quantization.KiviConfig;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The whole shipped model decoding through the CUDA storage kind's Java side (device stores, the
 * layer attention source, appends, flash-decoding split and log-sum-exp combine) on the CPU twin of
 * its kernels ({@link CudaBackends#emulated()}): a NIAH prompt prefilled and 24 greedy tokens
 * decoded give the same tokens as the CPU's exact f16 cache, and every step's logits agree to 1e-3.
 * On a GPU machine the same path runs with {@code --quant cuda-f16}.
 */
class CudaStoreModelTest {

    @Test
    void shippedModelDecodesTheSameTokensOnTheEmulatedCudaStore() throws Exception {
        CudaBackend emulated = CudaBackends.emulated();
        compare(emulated, HeadStoreFactory.exact(KvDType.F16, 16), emulated.factory(KvDType.F16, 16), "f16");
    }

    /** {@code cuda-int4} (KIVI groups on the device) against the CPU's KIVI store of the same configuration. */
    @Test
    void shippedModelDecodesTheSameTokensOnTheEmulatedCudaInt4Store() throws Exception {
        CudaBackend emulated = CudaBackends.emulated();
        KiviConfig config = new io.kvcache4j.cuda.CudaProviders.Int4().config();
        compare(emulated, config.factory(16), emulated.kiviFactory(config, 16), "int4");
    }

    /**
     * {@code hgca-cuda} (sinks and recent window attended on the device, the per-head sparse part on
     * the CPU, merged on the device) against {@code hgca} with its fast tier in host memory.
     */
    @Test
    void shippedModelDecodesTheSameTokensWithTheHgcaFastTierOnTheEmulatedDevice() throws Exception {
        CudaBackend emulated = CudaBackends.emulated();
        var config = io.kvcache4j.hybrid.HgcaConfig.defaults().withPageTokens(16);
        compare(
                emulated,
                io.kvcache4j.hybrid.SplitFactory.hgca(config),
                io.kvcache4j.hybrid.SplitFactory.hgca(config).onDevice(emulated.device()),
                "hgca");
    }

    /**
     * {@code headinfer-cuda} (every head in pinned host memory, staged per layer with the next layer's
     * prefetch on the transfer stream, attended by the {@code cuda-f16} kernels) against the
     * all-resident {@code cuda-f16} store on the same emulated device: the same logits bit for bit at
     * every step.
     */
    @Test
    void shippedModelDecodesBitIdenticallyWithEveryHeadOffloaded() throws Exception {
        CudaBackend emulated = CudaBackends.emulated();
        try (GgufLlama model = GgufLlama.open(ShippedModel.path());
                io.kvcache4j.cuda.Device device = emulated.device()) {
            NiahPrompt prompt = prompt(model, 512, 0.5, 20261205L, "cuda-headinfer-model");
            HeadStoreFactory[] stores = {
                new io.kvcache4j.cuda.CudaHeadStoreFactory(
                        device, KvDType.F16, 16, io.kvcache4j.cuda.CudaLayerAttention.DEFAULT_CHUNK),
                new io.kvcache4j.hybrid.CudaHeadInferFactory(device, new io.kvcache4j.hybrid.HeadInferConfig(0, 0, 16))
            };
            int steps = 12;
            float[][][] logits = decode(model, prompt, stores, steps);
            for (int t = 0; t < steps; t++) {
                assertArrayEquals(logits[0][t], logits[1][t], "step " + t + ": headinfer-cuda vs cuda-f16 logits");
            }
            assertEquals(0, device.bytesAllocated(), "both caches returned their device memory");
            assertEquals(0, device.hostBytesAllocated(), "and their pinned host memory");
        }
    }

    private static NiahPrompt prompt(GgufLlama model, int length, double depth, long seed, String label)
            throws Exception {
        TextCodec codec = NiahEndToEndTest.codec(Tokenizer.fromGguf(model.model()));
        System.out.println("[seed] " + label + " seed=" + seed);
        return NiahPrompt.build(
                Haystack.builtIn(codec),
                codec,
                Needle.standard("Quiet Harbor", "7365012"),
                length,
                depth,
                new SplittableRandom(seed));
    }

    /** The logits before each of {@code steps} greedy tokens, per storage. */
    private static float[][][] decode(GgufLlama model, NiahPrompt prompt, HeadStoreFactory[] stores, int steps) {
        float[][][] logits = new float[stores.length][steps][];
        LlamaEngine engine = new LlamaEngine(model, 256);
        for (int s = 0; s < stores.length; s++) {
            try (KvCache cache = KvCache.builder(model.config().cacheShape())
                    .store(stores[s])
                    .build()) {
                int[] all = prompt.all();
                float[] l = engine.forward(all, 0, all.length, cache);
                for (int t = 0; t < steps; t++) {
                    logits[s][t] = l.clone();
                    l = engine.forward(new int[] {LlamaEngine.argmax(l)}, 0, 1, cache);
                }
            }
        }
        return logits;
    }

    private static void compare(
            CudaBackend emulated, HeadStoreFactory cpuStores, HeadStoreFactory cudaStores, String kind)
            throws Exception {
        try (GgufLlama model = GgufLlama.open(ShippedModel.path());
                io.kvcache4j.cuda.Device device = emulated.device()) {
            TextCodec codec = NiahEndToEndTest.codec(Tokenizer.fromGguf(model.model()));
            NiahPrompt prompt = prompt(model, 1024, 0.4, 20261204L, "cuda-store-model");
            int steps = 24;
            float[][][] logits = decode(model, prompt, new HeadStoreFactory[] {cpuStores, cudaStores}, steps);
            int[][] tokens = new int[2][steps];
            for (int s = 0; s < 2; s++) {
                for (int t = 0; t < steps; t++) {
                    tokens[s][t] = LlamaEngine.argmax(logits[s][t]);
                }
            }
            assertArrayEquals(tokens[0], tokens[1], "greedy tokens, CPU " + kind + " vs emulated cuda-" + kind);
            String text = codec.decode(tokens[0], 0, steps);
            assertTrue(text.contains("7365012"), "the model finds the needle: " + text);
            // The two paths sum attention in different orders; a K or V element that lands on the other
            // side of an f16 rounding boundary differs by one f16 ulp (2^-11 relative) from then on, so
            // logits drift apart slowly over layers and steps: allowed up to 1e-3, the per-kernel
            // bound, and the largest drift is printed.
            double worst = 0;
            for (int t = 0; t < steps; t++) {
                double num = 0;
                double den = 0;
                for (int i = 0; i < logits[0][t].length; i++) {
                    double d = logits[0][t][i] - logits[1][t][i];
                    num += d * d;
                    den += (double) logits[0][t][i] * logits[0][t][i];
                }
                double rel = Math.sqrt(num / den);
                worst = Math.max(worst, rel);
                assertTrue(rel <= 1e-3, "step " + t + " logits differ by " + rel + " (relative L2)");
            }
            System.out.println("[cuda-store-model] " + kind + ": " + steps
                    + " greedy tokens identical; logits relative L2 at most " + worst + ": " + text.strip());
            assertEquals(steps, tokens[1].length);
        }
    }
}
