package io.kvcache4j.hybrid;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.cuda.CudaBackends;
import io.kvcache4j.cuda.CudaHeadStoreFactory;
import io.kvcache4j.cuda.CudaLayerAttention;
import io.kvcache4j.cuda.Device;
import io.kvcache4j.cuda.EmulatedDevice;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The GPU check of {@code headinfer-cuda} ({@link CudaHeadInferFactory}), run by {@code
 * cuda/scripts/device-check.sh} on a GPU machine:
 *
 * <ul>
 *   <li>{@code check}: layers of stores built by the factory (every head offloaded, 3 of 8 resident,
 *       and staged one head at a time) against the all-resident {@code cuda-f16} stores on the same device, bit for bit
 *       (outputs and log-sum-exps), through a chunked prefill, decode steps and a compaction; and
 *       against kv-api's CPU attention over exact f16 stores (relative error, within 1e-3). Device
 *       memory returns to where it was once the stores and layer sources close.
 *   <li>{@code bench}: a decode step (8 layers, 8 KV heads, group 4, d 128; one token appended and
 *       attended per layer) with every head offloaded, with and without the next layer's prefetch, and
 *       staged one head at a time ({@code slot=1}),
 *       against the all-resident cache, each with no other work between layers and with a CPU wait
 *       between layers as long as one layer's copy (what a model's other per-layer work gives the
 *       prefetch to hide behind); and the pinned host-to-device copy bandwidth of one layer's bytes on
 *       the transfer stream, the floor of any step that moves every offloaded head.
 * </ul>
 *
 * <p>With {@code -Dkvcache4j.deviceCheck.emulated=true} it runs on {@link EmulatedDevice}: a
 * rehearsal whose timings are the CPU's. Exit status 0 when the checks pass, 1 when one fails, 2
 * without a GPU.
 */
public final class HeadInferDeviceCheck {
    private static final double TOLERANCE = 1e-3;

    private HeadInferDeviceCheck() {}

    /** Stores and layer sources of one storage kind for every layer of a shape, driven directly. */
    private static final class Rig implements AutoCloseable {
        final ModelShape shape;
        final HeadStore[][] stores;
        final LayerAttention[] layers;
        final LayerBatch batch;

        Rig(ModelShape shape, HeadStoreFactory factory, int maxTokens) {
            this.shape = shape;
            this.stores = new HeadStore[shape.layers()][shape.kvHeads()];
            this.layers = new LayerAttention[shape.layers()];
            for (int l = 0; l < shape.layers(); l++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    stores[l][h] = factory.create(new HeadStoreFactory.Spec(shape, l, h));
                }
                layers[l] = factory.layerAttention(new LayerContext(shape, l, stores[l], null));
            }
            this.batch = new LayerBatch(shape, maxTokens);
        }

        void append(int layer, float[] k, float[] v, int tokens) {
            int d = shape.headDim();
            for (int h = 0; h < shape.kvHeads(); h++) {
                stores[layer][h].append(k, h * d, v, h * d, shape.kvRowFloats(), tokens);
            }
        }

        /** The last {@code tokens} rows of {@code layer} attend causally. */
        void attend(int layer, float[] q, int tokens, float[] out, float[] lse) {
            LayerBatch b = batch.set(
                    layer, tokens, q, 0, (float) (1 / Math.sqrt(shape.headDim())), out, 0, lse, 0, null, null);
            for (int t = 0; t < tokens; t++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    b.setVisible(t, h, stores[layer][h].count() - (tokens - 1 - t));
                }
            }
            layers[layer].attend(b);
        }

        void compact(int layer, int from, int[] sources, int moved, int newCount) {
            for (HeadStore s : stores[layer]) {
                s.compact(from, sources, moved, newCount);
            }
        }

        @Override
        public void close() throws Exception {
            for (HeadStore[] l : stores) {
                for (HeadStore s : l) {
                    s.close();
                }
            }
            for (LayerAttention a : layers) {
                if (a instanceof AutoCloseable c) {
                    c.close();
                }
            }
        }
    }

    private static float[] gaussian(SplittableRandom r, int n, double sd) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextGaussian() * sd);
        }
        return a;
    }

    /** Runs the bit-for-bit and CPU comparisons; returns whether every one passed. */
    static boolean check(Device device, PrintStream log) throws Exception {
        ModelShape shape = new ModelShape(3, 32, 8, 128);
        long seed = 20261204L;
        log.println("[seed] headinfer-cuda check seed=" + seed);
        SplittableRandom r = new SplittableRandom(seed);
        long before = device.bytesAllocated();
        int maxTokens = 1500;
        CudaHeadInferFactory offloadAll = new CudaHeadInferFactory(device, new HeadInferConfig(0, 0, 16));
        CudaHeadInferFactory offloadFive = new CudaHeadInferFactory(device, new HeadInferConfig(3, 0, 16));
        CudaHeadInferFactory headByHead = new CudaHeadInferFactory(device, new HeadInferConfig(0, 2, 16));
        boolean ok = true;
        double worstCpu = 0;
        long mismatches = 0;
        int attends = 0;
        try (Rig resident = new Rig(
                        shape,
                        new CudaHeadStoreFactory(device, KvDType.F16, 16, CudaLayerAttention.DEFAULT_CHUNK),
                        maxTokens);
                Rig all = new Rig(shape, offloadAll, maxTokens);
                Rig five = new Rig(shape, offloadFive, maxTokens);
                Rig one = new Rig(shape, headByHead, maxTokens);
                Rig cpu = new Rig(shape, HeadStoreFactory.exact(KvDType.F16, 16), maxTokens)) {
            Rig[] rigs = {resident, all, five, one, cpu};
            int[] chunks = {1500, 700};
            int steps = 24;
            for (int phase = 0; phase < chunks.length + steps; phase++) {
                int tokens = phase < chunks.length ? chunks[phase] : 1;
                if (phase == chunks.length + 10) {
                    // eviction: layers 1 and 2 keep slots [0, 64) and then every third slot
                    for (int l = 1; l < shape.layers(); l++) {
                        int count = resident.stores[l][0].count();
                        int[] sources = new int[count];
                        int moved = 0;
                        for (int s = 64; s < count; s += 3) {
                            sources[moved++] = s;
                        }
                        for (Rig rig : rigs) {
                            rig.compact(l, 64, sources, moved, 64 + moved);
                        }
                    }
                }
                for (int l = 0; l < shape.layers(); l++) {
                    float[] k = gaussian(r, tokens * shape.kvRowFloats(), 1.5);
                    float[] v = gaussian(r, tokens * shape.kvRowFloats(), 1);
                    float[] q = gaussian(r, tokens * shape.queryRowFloats(), 1.5);
                    float[][] out = new float[rigs.length][q.length];
                    float[][] lse = new float[rigs.length][tokens * shape.queryHeads()];
                    for (int i = 0; i < rigs.length; i++) {
                        rigs[i].append(l, k, v, tokens);
                        rigs[i].attend(l, q, tokens, out[i], lse[i]);
                    }
                    attends++;
                    for (int i = 1; i <= 3; i++) {
                        for (int j = 0; j < q.length; j++) {
                            if (Float.floatToRawIntBits(out[i][j]) != Float.floatToRawIntBits(out[0][j])) {
                                mismatches++;
                            }
                        }
                        for (int j = 0; j < lse[0].length; j++) {
                            if (Float.floatToRawIntBits(lse[i][j]) != Float.floatToRawIntBits(lse[0][j])) {
                                mismatches++;
                            }
                        }
                    }
                    worstCpu = Math.max(worstCpu, relative(out[0], out[4]));
                }
            }
            long[] counts = offloadAll.prefetchCounts();
            log.printf(
                    "headinfer-cuda every head offloaded: %d heads found prefetched at their turn, %d copied whole;"
                            + " %.1f MB sent to the device; staging %.1f MB%n",
                    counts[0], counts[1], offloadAll.bytesTransferred() / 1e6, offloadAll.stagingBytes() / 1e6);
            if (counts[0] == 0) {
                log.println("FAIL headinfer-cuda: no layer found its heads prefetched");
                ok = false;
            }
        }
        boolean same = mismatches == 0;
        log.printf(
                "%s headinfer-cuda (every head offloaded; 3 of 8 resident; staged one head at a time) vs cuda-f16 all"
                        + " resident, %d layer attends"
                        + " (prefill chunks of 1500 and 700 tokens, 24 decode steps, a compaction): %d differing floats%n",
                same ? "PASS" : "FAIL", attends, mismatches);
        boolean close = worstCpu <= TOLERANCE;
        log.printf(
                "%s cuda-f16 vs kv-api CPU attention over exact f16 stores: largest relative error %.2e (tolerance"
                        + " %.0e)%n",
                close ? "PASS" : "FAIL", worstCpu, TOLERANCE);
        boolean freed = device.bytesAllocated() == before;
        log.printf(
                "%s device memory after closing: %d bytes allocated, %d before%n",
                freed ? "PASS" : "FAIL", device.bytesAllocated(), before);
        return ok && same && close && freed;
    }

    private static double relative(float[] a, float[] b) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - b[i];
            num += d * d;
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / Math.max(den, Double.MIN_NORMAL));
    }

    /** Times decode steps at {@code slots} tokens of context; see the class comment. */
    static void bench(Device device, PrintStream log, int layers, int slots) throws Exception {
        ModelShape shape = new ModelShape(layers, 32, 8, 128);
        long seed = 20261206L;
        SplittableRandom r = new SplittableRandom(seed);
        int fill = 4096;
        float[] k = gaussian(r, fill * shape.kvRowFloats(), 1);
        float[] v = gaussian(r, fill * shape.kvRowFloats(), 1);
        float[] q = gaussian(r, shape.queryRowFloats(), 1);
        float[] k1 = gaussian(r, shape.kvRowFloats(), 1);
        float[] out = new float[shape.queryRowFloats()];
        float[] lse = new float[shape.queryHeads()];
        long layerBytes = 2L * shape.kvHeads() * slots * shape.headDim() * 2;
        log.printf(
                "bench headinfer-cuda: %d layers, %d KV heads, group %d, d %d, %d tokens of context: %.1f MB of f16 KV"
                        + " per layer, %.2f GB in all%n",
                layers,
                shape.kvHeads(),
                shape.groupSize(),
                shape.headDim(),
                slots,
                layerBytes / 1e6,
                layerBytes * (double) layers / 1e9);
        double copy = copyTime(device, layerBytes);
        log.printf(
                "  pinned host-to-device copy of one layer's bytes on the transfer stream: %.3f ms = %.1f GB/s;"
                        + " all %d layers: %.2f ms (the floor of a step that moves every head)%n",
                copy * 1e3, layerBytes / copy / 1e9, layers, copy * layers * 1e3);
        long waitNanos = Math.round(copy * 1e9);
        String[] names = {
            "cuda-f16 (all resident)",
            "headinfer-cuda, prefetch",
            "headinfer-cuda, no prefetch",
            "headinfer-cuda, slot=1, prefetch"
        };
        double[][] times = new double[names.length][2];
        long[] deviceBytes = new long[names.length];
        for (int kind = 0; kind < names.length; kind++) {
            long base = device.bytesAllocated();
            HeadStoreFactory f = switch (kind) {
                case 0 -> new CudaHeadStoreFactory(device, KvDType.F16, 16, CudaLayerAttention.DEFAULT_CHUNK);
                case 1 -> new CudaHeadInferFactory(device, new HeadInferConfig(0, 0, 16));
                case 2 -> new CudaHeadInferFactory(device, new HeadInferConfig(0, 0, 16)).withPrefetch(false);
                default -> new CudaHeadInferFactory(device, new HeadInferConfig(0, 2, 16));
            };
            try (Rig rig = new Rig(shape, f, 1)) {
                for (int l = 0; l < layers; l++) {
                    for (int done = 0; done < slots; done += fill) {
                        rig.append(l, k, v, Math.min(fill, slots - done));
                    }
                }
                for (int w = 0; w < 2; w++) {
                    long wait = w == 0 ? 0 : waitNanos;
                    double[] runs = new double[12];
                    for (int run = -3; run < runs.length; run++) {
                        long t0 = System.nanoTime();
                        for (int l = 0; l < layers; l++) {
                            rig.append(l, k1, k1, 1);
                            rig.attend(l, q, 1, out, lse);
                            if (wait > 0) {
                                long until = System.nanoTime() + wait;
                                while (System.nanoTime() < until) {
                                    Thread.onSpinWait();
                                }
                            }
                        }
                        if (run >= 0) {
                            runs[run] = (System.nanoTime() - t0) / 1e9;
                        }
                    }
                    Arrays.sort(runs);
                    times[kind][w] = runs[runs.length / 2];
                }
                deviceBytes[kind] = device.bytesAllocated() - base;
            }
        }
        for (int w = 0; w < 2; w++) {
            log.printf(
                    "  decode step, %s; floor %.3f ms (%s):%n",
                    w == 0
                            ? "no other work between layers"
                            : String.format("a %.3f ms CPU wait after each layer (one layer's copy time)", copy * 1e3),
                    copy * layers * 1e3,
                    w == 0 ? "every layer's copy, back to back" : "the waits alone, every copy hidden behind them");
            for (int kind = 0; kind < names.length; kind++) {
                log.printf(
                        "    %-34s %8.3f ms = %.2fx all-resident; %.2fx the floor%s%n",
                        names[kind],
                        times[kind][w] * 1e3,
                        times[kind][w] / times[0][w],
                        times[kind][w] / (copy * layers),
                        kind == 1
                                ? String.format("; prefetch saves %.1f%%", 100 * (1 - times[1][w] / times[2][w]))
                                : "");
            }
        }
        for (int kind = 0; kind < names.length; kind++) {
            log.printf(
                    "  device memory, %-34s %.1f MB = %.3f of the f16 KV (%.1f MB)%n",
                    names[kind],
                    deviceBytes[kind] / 1e6,
                    deviceBytes[kind] / (double) (layerBytes * layers),
                    layerBytes * (double) layers / 1e6);
        }
    }

    /** Median time of a pinned host-to-device copy of {@code bytes} on the transfer stream. */
    private static double copyTime(Device device, long bytes) {
        Device.HostBuffer host = device.allocHost(bytes);
        long dst = device.malloc(bytes);
        Device.Event done = device.newEvent();
        try {
            double[] runs = new double[10];
            for (int run = -2; run < runs.length; run++) {
                long t0 = System.nanoTime();
                device.transferToDevice(dst, host, 0, bytes);
                device.recordTransfer(done);
                device.awaitOnHost(done);
                if (run >= 0) {
                    runs[run] = (System.nanoTime() - t0) / 1e9;
                }
            }
            Arrays.sort(runs);
            return runs[runs.length / 2];
        } finally {
            device.freeEvent(done);
            device.free(dst);
            device.freeHost(host);
        }
    }

    /** {@code check}, {@code bench} or {@code all} (default); see the class comment. */
    public static void main(String[] args) throws Exception {
        String mode = args.length > 0 ? args[0] : "all";
        PrintStream log = System.out;
        Device device;
        if (Boolean.getBoolean("kvcache4j.deviceCheck.emulated")) {
            log.println("EMULATED device (-Dkvcache4j.deviceCheck.emulated=true): no GPU is used");
            device = new EmulatedDevice();
        } else {
            var backend = CudaBackends.available();
            log.println("CudaBackends: " + CudaBackends.reason());
            if (backend.isEmpty()) {
                System.exit(2);
            }
            device = backend.get().device();
        }
        boolean ok = true;
        if (!mode.equals("bench")) {
            ok = check(device, log);
        }
        if (!mode.equals("check")) {
            int layers = Integer.getInteger("kvcache4j.deviceCheck.headinferLayers", 8);
            for (String s : System.getProperty("kvcache4j.deviceCheck.headinferSlots", "32768,131072")
                    .split(",")) {
                bench(device, log, layers, Integer.parseInt(s.trim()));
            }
        }
        System.exit(ok ? 0 : 1);
    }
}
