package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The GPU check, runnable without JUnit on a machine that has only a JRE: every kernel on the GPU
 * against its CPU twin ({@link EmulatedDevice}) on random inputs, the whole store path (append
 * kernel, layer attention) against kv-api's CPU attention, then decode attention timed at 64K and 1M
 * tokens next to a device-to-device copy of the same bytes in the same run. {@code GpuKernelTest}
 * runs {@link #correctness} under JUnit; {@code cuda/scripts/device-check.sh} runs {@link #main}.
 *
 * <p>Usage: {@code java -cp ... io.kvcache4j.cuda.DeviceCheck [check|bench|all|dump DIR]} (default all;
 * {@code dump} writes a problem and the GPU's answer for {@code cuda/scripts/torch_oracle.py}).
 * Exit status 0 when every relative error is within {@value #TOLERANCE}, 1 otherwise, 2 without a GPU.
 */
public final class DeviceCheck {
    /** Largest relative error accepted for f16/bf16/int4 outputs against the CPU path. */
    public static final double TOLERANCE = 1e-3;

    private DeviceCheck() {}

    /** One comparison: what ran, its largest relative output error and largest absolute lse error. */
    public record Outcome(String what, double relativeError, double lseError) {
        /** Whether both errors are within {@link #TOLERANCE}. */
        public boolean passed() {
            return relativeError <= TOLERANCE && lseError <= TOLERANCE;
        }

        @Override
        public String toString() {
            return String.format(
                    "%-58s rel %.3e  lse %.3e  %s", what, relativeError, lseError, passed() ? "PASS" : "FAIL");
        }
    }

    /**
     * Every kernel on {@code gpu} against the emulation, and the store path ({@code storeSlots} f16
     * tokens per head) against kv-api's CPU attention.
     */
    public static List<Outcome> correctness(Device gpu, PrintStream log, int storeSlots) {
        List<Outcome> out = new ArrayList<>();
        try (EmulatedDevice cpu = new EmulatedDevice()) {
            int[][] shapes = {
                // tokens, kvHeads, group, headDim, slots, chunk
                {1, 8, 4, 128, 5000, KernelEmulator.CHUNK_BY_LENGTH},
                {4, 2, 8, 64, 3000, 512},
                {2, 4, 1, 256, 1500, 256},
                {3, 2, 5, 96, 777, 128},
                // the fixed-shape kernels (JCudaDevice.FIXED_SHAPES) not covered above
                {2, 3, 2, 32, 2500, 512},
                {1, 4, 8, 128, 3000, 1024},
                {2, 2, 1, 128, 2000, 256},
                {3, 2, 4, 64, 1700, 512},
                // chunks sized by the visible count past 128K slots (8,192-slot chunks)
                {1, 2, 1, 64, 140_000, KernelEmulator.CHUNK_BY_LENGTH},
            };
            for (KvDType type : List.of(KvDType.F16, KvDType.BF16)) {
                for (int[] s : shapes) {
                    SplittableRandom r = new SplittableRandom(s[4]);
                    int[] visible = new int[s[0] * s[1]];
                    for (int i = 0; i < visible.length; i++) {
                        visible[i] = i == 1 ? 0 : s[4] - r.nextInt(Math.min(s[4], 400));
                    }
                    KernelHarness.Problem p =
                            KernelHarness.random(type, s[0], s[1], s[2], s[3], s[4], visible, 3f, s[4] * 7L);
                    KernelHarness.Result g = KernelHarness.decode(gpu, p, s[5], null);
                    KernelHarness.Result c = KernelHarness.decode(cpu, p, s[5], null);
                    add(out, log, "decode+combine " + type + " " + Arrays.toString(s), g, c, s[3]);
                    // hybrid: the emulated result as the extra (CPU sparse) partial
                    KernelHarness.Result gh = KernelHarness.decode(gpu, p, s[5], c);
                    KernelHarness.Result ch = KernelHarness.decode(cpu, p, s[5], c);
                    add(out, log, "decode+combine_hybrid " + type + " " + Arrays.toString(s), gh, ch, s[3]);
                }
            }
            KiviLayout layout = new KiviLayout(128, 32, 32);
            int[] vis = {32 * 100, 32 * 37, 0, 32 * 100 - 5};
            KernelHarness.Int4Problem ip = KernelHarness.randomInt4(layout, 2, 2, 4, 32 * 100, vis, 3f, 99);
            boolean pipelinedInt4 = JCudaDevice.pipelinedInt4;
            try {
                JCudaDevice.pipelinedInt4 = false;
                add(
                        out,
                        log,
                        "decode_int4+combine G=32 d=128",
                        KernelHarness.decodeInt4(gpu, ip, 512),
                        KernelHarness.decodeInt4(cpu, ip, 512),
                        128);
            } finally {
                JCudaDevice.pipelinedInt4 = pipelinedInt4;
            }
            out.addAll(pipelinedInt4(gpu, cpu, log));
            out.addAll(pipelined(gpu, cpu, log));
            out.add(report(log, storePath(gpu, KvDType.F16, storeSlots, 2048)));
            int units = JCudaDevice.pipelineUnits;
            JCudaDevice.pipelineUnits = 3;
            try {
                Outcome o = storePath(gpu, KvDType.F16, storeSlots, KernelEmulator.CHUNK_BY_LENGTH);
                out.add(report(log, new Outcome("pipelined(3) " + o.what(), o.relativeError(), o.lseError())));
            } finally {
                JCudaDevice.pipelineUnits = units;
            }
            out.add(report(
                    log,
                    storePath(gpu, KvDType.BF16, Math.max(2000, storeSlots / 4), CudaLayerAttention.CHUNK_BY_LENGTH)));
            out.add(report(log, concurrentStorePaths(gpu, 4, Math.max(2000, storeSlots / 8))));
            out.add(report(log, kiviStorePath(gpu, Math.max(2000, storeSlots / 4))));
        }
        return out;
    }

    /**
     * Each pipelined kernel ({@link JCudaDevice#PIPELINED}) against the plain fixed-shape kernel of its
     * shape, bit for bit (any differing output or lse bit fails), and against the emulation.
     */
    static List<Outcome> pipelined(Device gpu, Device cpu, PrintStream log) {
        List<Outcome> out = new ArrayList<>();
        int[][] shapes = {
            // tokens, kvHeads, group, headDim, slots, chunk
            {2, 3, 4, 128, 9000, 512},
            {1, 8, 4, 128, 5000, KernelEmulator.CHUNK_BY_LENGTH},
            {1, 2, 4, 128, 140_000, KernelEmulator.CHUNK_BY_LENGTH},
            {3, 2, 4, 128, 700, 128},
            {1, 4, 8, 128, 3000, 1024},
            {2, 2, 1, 128, 2000, 256},
        };
        int before = JCudaDevice.pipelineUnits;
        // the emulation of each (type, shape) once, shared by the ring depths
        java.util.Map<String, KernelHarness.Result> emulations = new java.util.HashMap<>();
        try {
            for (String kernel : new java.util.TreeSet<>(JCudaDevice.PIPELINED)) {
                KvDType type = kernel.contains("bf16") ? KvDType.BF16 : KvDType.F16;
                int units = Integer.parseInt(kernel.substring(kernel.lastIndexOf("_p") + 2));
                for (int[] s : shapes) {
                    if (!kernel.contains("_g" + s[2] + "_d" + s[3] + "_")) {
                        continue;
                    }
                    SplittableRandom r = new SplittableRandom(s[4] + 31L * s[2]);
                    int[] visible = new int[s[0] * s[1]];
                    for (int i = 0; i < visible.length; i++) {
                        visible[i] = i == 1 ? 0 : s[4] - r.nextInt(Math.min(s[4], 400));
                    }
                    KernelHarness.Problem p =
                            KernelHarness.random(type, s[0], s[1], s[2], s[3], s[4], visible, 3f, s[4] * 5L);
                    JCudaDevice.pipelineUnits = 0;
                    KernelHarness.Result plain = KernelHarness.decode(gpu, p, s[5], null);
                    JCudaDevice.pipelineUnits = units;
                    KernelHarness.Result piped = KernelHarness.decode(gpu, p, s[5], null);
                    KernelHarness.Result emulated = emulations.computeIfAbsent(
                            type + Arrays.toString(s), key -> KernelHarness.decode(cpu, p, s[5], null));
                    int differing = differingBits(piped, plain);
                    double rel = KernelHarness.relativeError(piped, emulated, s[3]);
                    out.add(report(
                            log,
                            new Outcome(
                                    kernel + " " + Arrays.toString(s) + " vs plain kernel: " + differing
                                            + " differing floats; vs emulation",
                                    differing == 0 ? rel : Double.POSITIVE_INFINITY,
                                    KernelHarness.lseError(piped, emulated))));
                }
            }
        } finally {
            JCudaDevice.pipelineUnits = before;
        }
        return out;
    }

    /**
     * The pipelined int4 kernel against {@code kv_decode_int4}, bit for bit, and against the emulation,
     * on KIVI layouts with 1, 4 and 8 value groups per token and groups of 32 and 64 tokens.
     */
    static List<Outcome> pipelinedInt4(Device gpu, Device cpu, PrintStream log) {
        List<Outcome> out = new ArrayList<>();
        int[][] cases = {
            // groupTokens, valueGroupChannels, tokens, kvHeads, slots, chunk
            {32, 32, 2, 2, 32 * 100, 512},
            {64, 16, 1, 3, 64 * 40, 256},
            {32, 128, 3, 2, 32 * 70, 1024},
            {32, 32, 1, 8, 32 * 2048, 2048},
            // chunks sized by the visible count (2,048 slots past 32K)
            {32, 32, 1, 4, 32 * 1500, KernelEmulator.CHUNK_BY_LENGTH},
            {64, 16, 2, 2, 64 * 40, KernelEmulator.CHUNK_BY_LENGTH},
        };
        boolean before = JCudaDevice.pipelinedInt4;
        try {
            for (int[] c : cases) {
                KiviLayout layout = new KiviLayout(128, c[0], c[1]);
                SplittableRandom r = new SplittableRandom(c[4]);
                int[] vis = new int[c[2] * c[3]];
                for (int i = 0; i < vis.length; i++) {
                    vis[i] = i == 1 ? 0 : c[4] - r.nextInt(Math.min(c[4], 300));
                }
                KernelHarness.Int4Problem ip =
                        KernelHarness.randomInt4(layout, c[2], c[3], 4, c[4], vis, 3f, c[4] + 5L);
                JCudaDevice.pipelinedInt4 = false;
                KernelHarness.Result plain = KernelHarness.decodeInt4(gpu, ip, c[5]);
                JCudaDevice.pipelinedInt4 = true;
                KernelHarness.Result piped = KernelHarness.decodeInt4(gpu, ip, c[5]);
                KernelHarness.Result emulated = KernelHarness.decodeInt4(cpu, ip, c[5]);
                int differing = differingBits(piped, plain);
                out.add(report(
                        log,
                        new Outcome(
                                "kv_decode_int4_g4_d128_p3 " + Arrays.toString(c) + " vs kv_decode_int4: " + differing
                                        + " differing floats; vs emulation",
                                differing == 0
                                        ? KernelHarness.relativeError(piped, emulated, 128)
                                        : Double.POSITIVE_INFINITY,
                                KernelHarness.lseError(piped, emulated))));
            }
        } finally {
            JCudaDevice.pipelinedInt4 = before;
        }
        return out;
    }

    /** Number of output and lse floats whose bits differ. */
    static int differingBits(KernelHarness.Result a, KernelHarness.Result b) {
        int n = 0;
        for (int i = 0; i < a.out().length; i++) {
            n += Float.floatToRawIntBits(a.out()[i]) == Float.floatToRawIntBits(b.out()[i]) ? 0 : 1;
        }
        for (int i = 0; i < a.lse().length; i++) {
            n += Float.floatToRawIntBits(a.lse()[i]) == Float.floatToRawIntBits(b.lse()[i]) ? 0 : 1;
        }
        return n;
    }

    private static void add(
            List<Outcome> out, PrintStream log, String what, KernelHarness.Result g, KernelHarness.Result c, int d) {
        out.add(report(log, new Outcome(what, KernelHarness.relativeError(g, c, d), KernelHarness.lseError(g, c))));
    }

    private static Outcome report(PrintStream log, Outcome o) {
        log.println(o);
        log.flush();
        return o;
    }

    /**
     * Append kernel, compaction gather and {@link CudaLayerAttention} on the GPU against the CPU source
     * over the stores' host mirrors ({@code slots} tokens, 8 KV heads, group 4, d 128, 2 query tokens).
     */
    static Outcome storePath(Device gpu, KvDType type, int slots, int chunk) {
        ModelShape shape = new ModelShape(1, 32, 8, 128);
        int d = shape.headDim();
        SplittableRandom r = new SplittableRandom(slots);
        CudaHeadStore[] stores = new CudaHeadStore[shape.kvHeads()];
        float[] k = new float[4096 * d];
        float[] v = new float[4096 * d];
        int bitErrors = 0;
        try {
            for (int h = 0; h < stores.length; h++) {
                stores[h] = new CudaHeadStore(gpu, type, d, 256);
                for (int done = 0; done < slots; ) {
                    int n = Math.min(4096, slots - done);
                    for (int i = 0; i < n * d; i++) {
                        k[i] = (float) (r.nextDouble() * 2 - 1);
                        v[i] = (float) (r.nextDouble() * 2 - 1);
                    }
                    stores[h].append(k, 0, v, 0, d, n);
                    done += n;
                }
                int[] sources = new int[slots / 2];
                for (int j = 0; j < sources.length; j++) {
                    sources[j] = 2 * j + 1;
                }
                stores[h].compact(0, sources, sources.length, sources.length);
                short[] rows = stores[h].downloadRows();
                float[] row = new float[d];
                for (int s = 0; s < stores[h].count(); s += 97) {
                    stores[h].readKey(s, row, 0);
                    for (int i = 0; i < d; i++) {
                        bitErrors += KernelEmulator.encode(type, row[i]) == rows[s * d + i] ? 0 : 1;
                    }
                }
            }
            int tokens = 2;
            float[] q = new float[tokens * shape.queryRowFloats()];
            for (int i = 0; i < q.length; i++) {
                q[i] = (float) (r.nextDouble() * 6 - 3);
            }
            float[] og = new float[q.length];
            float[] oc = new float[q.length];
            float[] lg = new float[tokens * shape.queryHeads()];
            float[] lc = new float[lg.length];
            LayerContext ctx = new LayerContext(shape, 0, stores, null);
            HeadStore[] mirrors = new HeadStore[stores.length];
            for (int h = 0; h < stores.length; h++) {
                mirrors[h] = stores[h].mirror();
            }
            LayerBatch b = new LayerBatch(shape, tokens);
            for (int t = 0; t < tokens; t++) {
                for (int h = 0; h < shape.kvHeads(); h++) {
                    b.setVisible(t, h, stores[h].count() - t * Math.min(1000, stores[h].count() / 4));
                }
            }
            try (CudaLayerAttention att = new CudaLayerAttention(gpu, ctx, chunk)) {
                att.attend(b.set(0, tokens, q, 0, (float) (1 / Math.sqrt(d)), og, 0, lg, 0, null, null));
            }
            io.kvcache4j.attention.LayerAttention.cpu(
                            new LayerContext(shape, 0, mirrors, null), io.kvcache4j.attention.AttentionKernels.get())
                    .attend(b.set(0, tokens, q, 0, (float) (1 / Math.sqrt(d)), oc, 0, lc, 0, null, null));
            KernelHarness.Result g = new KernelHarness.Result(og, lg);
            KernelHarness.Result c = new KernelHarness.Result(oc, lc);
            double rel = KernelHarness.relativeError(g, c, d);
            return new Outcome(
                    "store path " + type + " " + slots + " slots chunk " + chunkName(chunk, slots)
                            + " vs kv-api CPU (append/gather bit errors " + bitErrors + ")",
                    bitErrors == 0 ? rel : Double.POSITIVE_INFINITY,
                    KernelHarness.lseError(g, c));
        } finally {
            for (CudaHeadStore s : stores) {
                if (s != null) {
                    s.close();
                }
            }
        }
    }

    /**
     * The {@code cuda-int4} path: {@link CudaKiviHeadStore}s (KIVI groups uploaded from the host
     * store, the f16 residual appended on the device) of 8 KV heads, group 4, d 128, attended by
     * {@link CudaKiviLayerAttention} (int4 kernel, residual kernel, merge on the device) against the
     * CPU attention over the host stores of record, after a prefill of {@code slots} tokens and again
     * after 40 single-token appends.
     */
    static Outcome kiviStorePath(Device gpu, int slots) {
        ModelShape shape = new ModelShape(1, 32, 8, 128);
        int d = shape.headDim();
        io.kvcache4j.quantization.KiviConfig config = new CudaProviders.Int4().config();
        SplittableRandom r = new SplittableRandom(slots + 11L);
        CudaKiviHeadStore[] stores = new CudaKiviHeadStore[shape.kvHeads()];
        double rel = 0, lse = 0;
        try {
            HeadStore[] hosts = new HeadStore[stores.length];
            for (int h = 0; h < stores.length; h++) {
                stores[h] = new CudaKiviHeadStore(gpu, config, d, 256, io.kvcache4j.quantization.CodecKernels.get());
                hosts[h] = stores[h].host();
            }
            try (CudaKiviLayerAttention att =
                    new CudaKiviLayerAttention(gpu, new LayerContext(shape, 0, stores, null))) {
                io.kvcache4j.attention.LayerAttention cpu = io.kvcache4j.attention.LayerAttention.cpu(
                        new LayerContext(shape, 0, hosts, null), io.kvcache4j.attention.AttentionKernels.get());
                for (int step = 0; step <= 40; step++) {
                    int n = step == 0 ? slots : 1;
                    float[] k = new float[n * d];
                    float[] v = new float[n * d];
                    for (CudaKiviHeadStore s : stores) {
                        for (int i = 0; i < k.length; i++) {
                            k[i] = (float) (r.nextDouble() * 2 - 1);
                            v[i] = (float) (r.nextDouble() * 2 - 1);
                        }
                        s.append(k, 0, v, 0, d, n);
                    }
                    if (step != 0 && step != 40) {
                        continue;
                    }
                    int tokens = 2;
                    float[] q = new float[tokens * shape.queryRowFloats()];
                    for (int i = 0; i < q.length; i++) {
                        q[i] = (float) (r.nextDouble() * 6 - 3);
                    }
                    float[][] o = new float[2][q.length];
                    float[][] l = new float[2][tokens * shape.queryHeads()];
                    for (int which = 0; which < 2; which++) {
                        LayerBatch b = new LayerBatch(shape, tokens)
                                .set(0, tokens, q, 0, (float) (1 / Math.sqrt(d)), o[which], 0, l[which], 0, null, null);
                        for (int t = 0; t < tokens; t++) {
                            for (int h = 0; h < stores.length; h++) {
                                b.setVisible(t, h, stores[h].count() - t * 150);
                            }
                        }
                        (which == 0 ? att : cpu).attend(b);
                    }
                    KernelHarness.Result g = new KernelHarness.Result(o[0], l[0]);
                    KernelHarness.Result c = new KernelHarness.Result(o[1], l[1]);
                    rel = Math.max(rel, KernelHarness.relativeError(g, c, d));
                    lse = Math.max(lse, KernelHarness.lseError(g, c));
                }
            }
        } finally {
            for (CudaKiviHeadStore s : stores) {
                if (s != null) {
                    s.close();
                }
            }
        }
        return new Outcome(
                "cuda-int4 store path, " + slots + "+40 slots, vs kv-api CPU on the host KIVI stores", rel, lse);
    }

    /**
     * {@code threads} store paths at once on the one device, each from its own thread with its own
     * stores (as the NIAH harness runs one cache per core): the worst of their errors, infinite if any
     * thread failed.
     */
    static Outcome concurrentStorePaths(Device gpu, int threads, int slots) {
        List<java.util.concurrent.Future<Outcome>> futures = new ArrayList<>();
        java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(threads);
        double rel = 0, lse = 0;
        String failure = "";
        try {
            for (int i = 0; i < threads; i++) {
                int n = slots + 97 * i;
                futures.add(pool.submit(() -> storePath(gpu, KvDType.F16, n, KernelEmulator.CHUNK_BY_LENGTH)));
            }
            for (var f : futures) {
                try {
                    Outcome o = f.get();
                    rel = Math.max(rel, o.relativeError());
                    lse = Math.max(lse, o.lseError());
                } catch (java.util.concurrent.ExecutionException | InterruptedException e) {
                    rel = Double.POSITIVE_INFINITY;
                    failure = " (a thread failed: " + e.getCause() + ")";
                }
            }
        } finally {
            pool.shutdownNow();
        }
        return new Outcome(
                threads + " store paths at once, one thread each, " + slots + "+ slots, f16" + failure, rel, lse);
    }

    /**
     * Times decode attention (one query token, 8 KV heads, group 4, d 128, f16) over {@code slots}
     * tokens per head, and a device-to-device copy of the same KV bytes, in the same process.
     */
    static void bench(Device gpu, int slots, PrintStream log) {
        int kvHeads = 8, group = 4, d = 128;
        // fixed chunks, then chunks sized by the visible count (the default)
        int[] chunkSizes = {1024, 2048, 4096, 8192, KernelEmulator.CHUNK_BY_LENGTH};
        int byLength = chunkSizes.length - 1;
        long rowBytes = 2L * d;
        long headBytes = rowBytes * slots;
        long kvBytes = 2 * kvHeads * headBytes;
        int mostChunks = (slots + chunkSizes[0] - 1) / chunkSizes[0];
        int rows = group * kvHeads;
        List<Long> allocs = new ArrayList<>();
        Device.HostBuffer host = gpu.allocHost(64L << 20);
        try {
            // one 64 MiB block of random f16, replicated over every head's rows on the device
            SplittableRandom r = new SplittableRandom(1);
            var seg = host.segment();
            for (long i = 0; i < (64L << 20) / 2; i++) {
                seg.set(KernelEmulator.I16, 2 * i, Float.floatToFloat16((float) (r.nextDouble() * 2 - 1)));
            }
            long block = gpu.malloc(64L << 20);
            allocs.add(block);
            gpu.copyToDevice(block, host, 0, 64L << 20);
            long[] table = new long[2 * kvHeads];
            for (int i = 0; i < table.length; i++) {
                long p = gpu.malloc(headBytes);
                allocs.add(p);
                table[i] = p;
                for (long off = 0; off < headBytes; off += 64L << 20) {
                    gpu.copyOnDevice(p + off, block, Math.min(64L << 20, headBytes - off));
                }
            }
            gpu.synchronize();
            java.lang.foreign.MemorySegment.copy(
                    table, 0, seg, java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0, table.length);
            long tablePtr = gpu.malloc(8L * table.length);
            allocs.add(tablePtr);
            gpu.copyToDevice(tablePtr, host, 0, 8L * table.length);
            float[] q = new float[rows * d];
            for (int i = 0; i < q.length; i++) {
                q[i] = (float) (r.nextDouble() * 2 - 1);
            }
            int[] vis = new int[kvHeads];
            Arrays.fill(vis, slots);
            gpu.synchronize();
            java.lang.foreign.MemorySegment.copy(q, 0, seg, KernelEmulator.F32, 0, q.length);
            java.lang.foreign.MemorySegment.copy(vis, 0, seg, KernelEmulator.I32, 4L * q.length, vis.length);
            long qPtr = gpu.malloc(4L * q.length + 4L * vis.length);
            allocs.add(qPtr);
            gpu.copyToDevice(qPtr, host, 0, 4L * q.length + 4L * vis.length);
            long parts = gpu.malloc(4L * rows * mostChunks * (d + 1));
            long out = gpu.malloc(4L * rows * (d + 1));
            allocs.add(parts);
            allocs.add(out);
            double[] tAttn = new double[chunkSizes.length];
            double[][] tPipe = new double[PIPE_UNITS.length][chunkSizes.length];
            double tGeneral = Double.NaN;
            for (int k = 0; k < chunkSizes.length; k++) {
                int chunk = chunkSizes[k];
                int maxChunks = KernelEmulator.chunks(slots, chunk);
                Runnable decode = () -> {
                    gpu.decodeExact(
                            KvDType.F16,
                            tablePtr,
                            kvHeads,
                            qPtr,
                            qPtr + 4L * q.length,
                            parts,
                            parts + 4L * rows * maxChunks * d,
                            1,
                            group,
                            d,
                            chunk,
                            maxChunks,
                            (float) (1 / Math.sqrt(d)));
                    gpu.combine(
                            parts,
                            parts + 4L * rows * maxChunks * d,
                            0,
                            0,
                            out,
                            out + 4L * rows * d,
                            rows,
                            maxChunks,
                            d);
                };
                int before = JCudaDevice.pipelineUnits;
                try {
                    JCudaDevice.pipelineUnits = 0;
                    tAttn[k] = time(gpu, decode);
                    for (int u = 0; u < PIPE_UNITS.length; u++) {
                        JCudaDevice.pipelineUnits = PIPE_UNITS[u];
                        tPipe[u][k] = time(gpu, decode);
                    }
                } finally {
                    JCudaDevice.pipelineUnits = before;
                }
                if (k == byLength && gpu instanceof JCudaDevice) {
                    JCudaDevice.fixedShapeKernels = false;
                    try {
                        tGeneral = time(gpu, decode);
                    } finally {
                        JCudaDevice.fixedShapeKernels = true;
                    }
                }
            }
            // a whole decode step as CudaLayerAttention runs it (upload queries and visible counts,
            // decode, combine, download the output), without and with the CPU's sparse partial
            // uploaded and merged on the device by kv_combine_hybrid
            int stepChunk = CudaLayerAttention.DEFAULT_CHUNK;
            int stepChunks = KernelEmulator.chunks(slots, stepChunk);
            long partBytes = 4L * rows * (d + 1);
            long extraHostAt = 32L << 20;
            long outHostAt = 40L << 20;
            for (int i = 0; i < rows * d; i++) {
                seg.set(KernelEmulator.F32, extraHostAt + 4L * i, (float) (r.nextDouble() * 2 - 1));
            }
            for (int i = 0; i < rows; i++) {
                seg.set(KernelEmulator.F32, extraHostAt + 4L * (rows * d + i), (float) (r.nextDouble() * 4));
            }
            long extraPtr = gpu.malloc(partBytes);
            allocs.add(extraPtr);
            double[] tStep = new double[2];
            for (int hybrid = 0; hybrid < 2; hybrid++) {
                boolean withExtra = hybrid == 1;
                Runnable step = () -> {
                    gpu.copyToDevice(qPtr, host, 0, 4L * q.length + 4L * vis.length);
                    if (withExtra) {
                        gpu.copyToDevice(extraPtr, host, extraHostAt, partBytes);
                    }
                    gpu.decodeExact(
                            KvDType.F16,
                            tablePtr,
                            kvHeads,
                            qPtr,
                            qPtr + 4L * q.length,
                            parts,
                            parts + 4L * rows * stepChunks * d,
                            1,
                            group,
                            d,
                            stepChunk,
                            stepChunks,
                            (float) (1 / Math.sqrt(d)));
                    gpu.combine(
                            parts,
                            parts + 4L * rows * stepChunks * d,
                            withExtra ? extraPtr : 0,
                            withExtra ? extraPtr + 4L * rows * d : 0,
                            out,
                            out + 4L * rows * d,
                            rows,
                            stepChunks,
                            d);
                    gpu.copyToHost(host, outHostAt, out, partBytes);
                };
                tStep[hybrid] = time(gpu, step);
            }
            // the copy baseline: the same KV bytes, device to device, into one destination
            long dst = gpu.malloc(kvBytes);
            allocs.add(dst);
            Runnable copy = () -> {
                for (int i = 0; i < table.length; i++) {
                    gpu.copyOnDevice(dst + i * headBytes, table[i], headBytes);
                }
            };
            double tCopy = time(gpu, copy);
            log.printf(
                    "bench decode f16 slots=%d kvHeads=%d group=%d d=%d: KV bytes %.3f GiB (median of 20 runs)%n",
                    slots, kvHeads, group, d, kvBytes / (double) (1L << 30));
            log.printf(
                    "  d2d copy of the same bytes: %.4f ms  -> %.1f GB/s copied (%.1f GB/s read+write)%n",
                    tCopy * 1e3, kvBytes / tCopy / 1e9, 2 * kvBytes / tCopy / 1e9);
            for (int k = 0; k < chunkSizes.length; k++) {
                log.printf(
                        "  plain kernel: attention (decode+combine) chunk=%s: %.4f ms  -> KV read %.1f GB/s;"
                                + " attention/copy time %.3f%n",
                        chunkName(chunkSizes[k], slots), tAttn[k] * 1e3, kvBytes / tAttn[k] / 1e9, tAttn[k] / tCopy);
            }
            for (int u = 0; u < PIPE_UNITS.length; u++) {
                for (int k = 0; k < chunkSizes.length; k++) {
                    log.printf(
                            "  pipelined(%d) attention chunk=%s: %.4f ms  -> KV read %.1f GB/s; attention/copy time %.3f;"
                                    + " vs plain kernel %.3fx faster%n",
                            PIPE_UNITS[u],
                            chunkName(chunkSizes[k], slots),
                            tPipe[u][k] * 1e3,
                            kvBytes / tPipe[u][k] / 1e9,
                            tPipe[u][k] / tCopy,
                            tAttn[k] / tPipe[u][k]);
                }
            }
            if (gpu instanceof JCudaDevice jd) {
                int before = JCudaDevice.pipelineUnits;
                try {
                    for (int units : new int[] {0, 2, 3}) {
                        JCudaDevice.pipelineUnits = units;
                        String kernel = JCudaDevice.decodeKernel(KvDType.F16, group, d);
                        int shared = JCudaDevice.sharedBytes(kernel, group);
                        int[] occ = jd.occupancy(kernel, shared);
                        log.printf(
                                "  occupancy %s: %d blocks/SM, %d registers/thread, %d B dynamic shared%n",
                                kernel, occ[0], occ[1], shared);
                    }
                } finally {
                    JCudaDevice.pipelineUnits = before;
                }
            }
            log.printf(
                    "  plain kernel %s at chunk=%s: %.4f ms; the general (run-time shape) kernel %s: %.4f ms -> %.2fx%n",
                    "kv_decode_f16_g" + group + "_d" + d,
                    chunkName(chunkSizes[byLength], slots),
                    tAttn[byLength] * 1e3,
                    "kv_decode_f16",
                    tGeneral * 1e3,
                    tGeneral / tAttn[byLength]);
            log.printf(
                    "  decode step chunk=%s, default kernel (upload, decode, combine, download): dense %.4f ms, with the"
                            + " CPU partial"
                            + " merged on the device (kv_combine_hybrid) %.4f ms -> hybrid merge adds %.2f%%%n",
                    chunkName(stepChunk, slots), tStep[0] * 1e3, tStep[1] * 1e3, 100 * (tStep[1] / tStep[0] - 1));
            log.flush();
        } finally {
            gpu.synchronize();
            for (long a : allocs) {
                gpu.free(a);
            }
            gpu.freeHost(host);
        }
    }

    /**
     * Times {@code kv_decode_int4} + combine (one query token, 8 KV heads, group 4, d 128, KIVI groups
     * of 32 tokens, 32-channel value groups, f32 scales) over {@code slots} tokens per head at fixed
     * chunks, next to a device-to-device copy of the same packed bytes, in the same process.
     */
    static void benchInt4(Device gpu, int slots, PrintStream log) {
        int kvHeads = 8, group = 4, d = 128;
        KiviLayout layout = new KiviLayout(d, 32, 32);
        long groupBytes = layout.groupBytes();
        int blockGroups = 2048;
        long blockBytes = blockGroups * groupBytes;
        long headGroups = slots / layout.groupTokens();
        long headBytes = headGroups * groupBytes;
        long totalBytes = kvHeads * headBytes;
        int rows = group * kvHeads;
        int[] chunkSizes = {1024, 2048, 4096, 8192, KernelEmulator.CHUNK_BY_LENGTH};
        List<Long> allocs = new ArrayList<>();
        Device.HostBuffer host = gpu.allocHost(blockBytes);
        try {
            // 2,048 random groups quantized on the host, replicated over every head on the device
            SplittableRandom r = new SplittableRandom(4);
            float[] k = new float[layout.groupTokens() * d];
            float[] v = new float[k.length];
            for (int g = 0; g < blockGroups; g++) {
                for (int e = 0; e < k.length; e++) {
                    k[e] = (float) (r.nextDouble() * 2 - 1);
                    v[e] = (float) (r.nextDouble() * 2 - 1);
                }
                layout.quantize(k, v, host.segment(), g);
            }
            long block = gpu.malloc(blockBytes);
            allocs.add(block);
            gpu.copyToDevice(block, host, 0, blockBytes);
            long[] table = new long[kvHeads];
            for (int h = 0; h < kvHeads; h++) {
                long p = gpu.malloc(headBytes);
                allocs.add(p);
                table[h] = p;
                for (long off = 0; off < headBytes; off += blockBytes) {
                    gpu.copyOnDevice(p + off, block, Math.min(blockBytes, headBytes - off));
                }
            }
            gpu.synchronize();
            var seg = host.segment();
            java.lang.foreign.MemorySegment.copy(
                    table, 0, seg, java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0, table.length);
            long tablePtr = gpu.malloc(8L * table.length);
            allocs.add(tablePtr);
            gpu.copyToDevice(tablePtr, host, 0, 8L * table.length);
            float[] q = new float[rows * d];
            for (int i = 0; i < q.length; i++) {
                q[i] = (float) (r.nextDouble() * 2 - 1);
            }
            int[] vis = new int[kvHeads];
            Arrays.fill(vis, slots);
            gpu.synchronize();
            java.lang.foreign.MemorySegment.copy(q, 0, seg, KernelEmulator.F32, 0, q.length);
            java.lang.foreign.MemorySegment.copy(vis, 0, seg, KernelEmulator.I32, 4L * q.length, vis.length);
            long qPtr = gpu.malloc(4L * q.length + 4L * vis.length);
            allocs.add(qPtr);
            gpu.copyToDevice(qPtr, host, 0, 4L * q.length + 4L * vis.length);
            int mostChunks = KernelEmulator.chunks(slots, chunkSizes[0]);
            long parts = gpu.malloc(4L * rows * mostChunks * (d + 1));
            long out = gpu.malloc(4L * rows * (d + 1));
            allocs.add(parts);
            allocs.add(out);
            double[][] times = new double[2][chunkSizes.length];
            boolean before = JCudaDevice.pipelinedInt4;
            for (int c = 0; c < chunkSizes.length * 2; c++) {
                int chunk = chunkSizes[c % chunkSizes.length];
                int maxChunks = KernelEmulator.chunks(slots, chunk);
                JCudaDevice.pipelinedInt4 = c >= chunkSizes.length;
                times[c / chunkSizes.length][c % chunkSizes.length] = time(gpu, () -> {
                    gpu.decodeInt4(
                            tablePtr,
                            kvHeads,
                            layout,
                            qPtr,
                            qPtr + 4L * q.length,
                            parts,
                            parts + 4L * rows * maxChunks * d,
                            1,
                            group,
                            chunk,
                            maxChunks,
                            (float) (1 / Math.sqrt(d)));
                    gpu.combine(
                            parts,
                            parts + 4L * rows * maxChunks * d,
                            0,
                            0,
                            out,
                            out + 4L * rows * d,
                            rows,
                            maxChunks,
                            d);
                });
            }
            JCudaDevice.pipelinedInt4 = before;
            long dst = gpu.malloc(totalBytes);
            allocs.add(dst);
            double tCopy = time(gpu, () -> {
                for (int h = 0; h < kvHeads; h++) {
                    gpu.copyOnDevice(dst + h * headBytes, table[h], headBytes);
                }
            });
            long f16Bytes = 2L * kvHeads * slots * d * 2;
            log.printf(
                    "bench decode int4 (KIVI G=32, value groups 32, f32 scales) slots=%d kvHeads=%d group=%d d=%d:"
                            + " packed bytes %.3f GiB = %.3fx f16 (median of 20 runs)%n",
                    slots, kvHeads, group, d, totalBytes / (double) (1L << 30), totalBytes / (double) f16Bytes);
            log.printf(
                    "  d2d copy of the same bytes: %.4f ms  -> %.1f GB/s copied (%.1f GB/s read+write)%n",
                    tCopy * 1e3, totalBytes / tCopy / 1e9, 2 * totalBytes / tCopy / 1e9);
            for (int kind = 0; kind < 2; kind++) {
                for (int c = 0; c < chunkSizes.length; c++) {
                    double t = times[kind][c];
                    log.printf(
                            "  %s int4 attention (decode+combine) chunk=%s: %.4f ms  -> packed read %.1f GB/s, %.1f GB/s"
                                    + " of f16-equivalent KV; attention/copy time %.3f%s%n",
                            kind == 0 ? "kv_decode_int4" : "kv_decode_int4_g4_d128_p3",
                            chunkName(chunkSizes[c], slots),
                            t * 1e3,
                            totalBytes / t / 1e9,
                            f16Bytes / t / 1e9,
                            t / tCopy,
                            kind == 0 ? "" : String.format("; %.2fx faster than kv_decode_int4", times[0][c] / t));
                }
            }
            if (gpu instanceof JCudaDevice jd) {
                int[] occ = jd.occupancy("kv_decode_int4", 0);
                log.printf("  occupancy kv_decode_int4: %d blocks/SM, %d registers/thread%n", occ[0], occ[1]);
                occ = jd.occupancy("kv_decode_int4_g4_d128_p3", JCudaDevice.INT4_PIPE_SHARED);
                log.printf(
                        "  occupancy kv_decode_int4_g4_d128_p3: %d blocks/SM, %d registers/thread, %d B dynamic shared%n",
                        occ[0], occ[1], JCudaDevice.INT4_PIPE_SHARED);
            }
            log.flush();
        } finally {
            gpu.synchronize();
            for (long a : allocs) {
                gpu.free(a);
            }
            gpu.freeHost(host);
        }
    }

    /** Ring depths of the pipelined kernels timed by {@link #bench}. */
    private static final int[] PIPE_UNITS = {2, 3};

    private static String chunkName(int chunk, int slots) {
        return chunk == KernelEmulator.CHUNK_BY_LENGTH
                ? "by-length(" + KernelEmulator.chunkFor(slots) + ")"
                : Integer.toString(chunk);
    }

    /** Median seconds of 20 timed runs after 3 warm-up runs, each synchronised. */
    private static double time(Device gpu, Runnable work) {
        for (int i = 0; i < 3; i++) {
            work.run();
        }
        gpu.synchronize();
        double[] t = new double[20];
        for (int i = 0; i < t.length; i++) {
            long t0 = System.nanoTime();
            work.run();
            gpu.synchronize();
            t[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(t);
        return t[t.length / 2];
    }

    /**
     * Writes one decode problem (1 token, 8 KV heads, group 4, d 128, {@code slots} f16 rows per head)
     * and the GPU's result under {@code dir}, for {@code cuda/scripts/torch_oracle.py}.
     */
    static void dump(Device gpu, java.nio.file.Path dir, int slots, PrintStream log) throws java.io.IOException {
        int kvHeads = 8, group = 4, d = 128;
        int[] visible = new int[kvHeads];
        Arrays.fill(visible, slots);
        KernelHarness.Problem p = KernelHarness.random(KvDType.F16, 1, kvHeads, group, d, slots, visible, 3f, 2024);
        KernelHarness.Result g = KernelHarness.decode(gpu, p, CudaLayerAttention.DEFAULT_CHUNK, null);
        java.nio.file.Files.createDirectories(dir);
        try (var k = new java.io.DataOutputStream(new java.io.BufferedOutputStream(
                        java.nio.file.Files.newOutputStream(dir.resolve("k.bin")), 1 << 20));
                var v = new java.io.DataOutputStream(new java.io.BufferedOutputStream(
                        java.nio.file.Files.newOutputStream(dir.resolve("v.bin")), 1 << 20))) {
            for (int h = 0; h < kvHeads; h++) {
                for (int i = 0; i < slots * d; i++) {
                    k.writeShort(Short.reverseBytes(p.keys()[h][i]));
                    v.writeShort(Short.reverseBytes(p.values()[h][i]));
                }
            }
        }
        writeFloats(dir.resolve("q.bin"), p.queries());
        writeFloats(dir.resolve("out.bin"), g.out());
        writeFloats(dir.resolve("lse.bin"), g.lse());
        java.nio.file.Files.writeString(
                dir.resolve("meta.txt"), kvHeads + " " + group + " " + d + " " + slots + " " + p.scale() + "\n");
        log.println("dumped decode problem (" + slots + " slots) and the GPU result to " + dir);
    }

    private static void writeFloats(java.nio.file.Path file, float[] a) throws java.io.IOException {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * a.length).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(a);
        java.nio.file.Files.write(file, b.array());
    }

    /** Runs the check; see the class comment for the modes and the exit status. */
    public static void main(String[] args) throws java.io.IOException {
        int benchSlotsOverride = Integer.getInteger("kvcache4j.deviceCheck.benchSlots", 0);
        String mode = args.length > 0 ? args[0] : "all";
        PrintStream log = System.out;
        Device gpu;
        if (Boolean.getBoolean("kvcache4j.deviceCheck.emulated")) {
            // a rehearsal of the bundle on a machine without a GPU: every number printed is the CPU's
            log.println("EMULATED device (-Dkvcache4j.deviceCheck.emulated=true): no GPU is used");
            gpu = new EmulatedDevice();
        } else {
            var backend = CudaBackends.available();
            log.println("CudaBackends: " + CudaBackends.reason());
            if (backend.isEmpty()) {
                System.exit(2);
            }
            gpu = backend.get().device();
        }
        if (mode.equals("dump")) {
            dump(
                    gpu,
                    java.nio.file.Path.of(args.length > 1 ? args[1] : "oracle"),
                    Integer.getInteger("kvcache4j.deviceCheck.dumpSlots", 70_000),
                    log);
            gpu.close();
            return;
        }
        boolean ok = true;
        if (!mode.equals("bench")) {
            long t0 = System.nanoTime();
            List<Outcome> outcomes =
                    correctness(gpu, log, Integer.getInteger("kvcache4j.deviceCheck.storeSlots", 65_536));
            ok = outcomes.stream().allMatch(Outcome::passed);
            log.printf(
                    "correctness: %d checks, %s (tolerance %.0e), %.1f s%n",
                    outcomes.size(), ok ? "all PASS" : "FAILURES", TOLERANCE, (System.nanoTime() - t0) / 1e9);
        }
        if (!mode.equals("check")) {
            int[] benchSlots = benchSlotsOverride > 0 ? new int[] {benchSlotsOverride} : new int[] {65_536, 1 << 20};
            for (int slots : benchSlots) {
                bench(gpu, slots, log);
            }
            for (int slots : benchSlots) {
                benchInt4(gpu, slots, log);
            }
        }
        gpu.close();
        System.exit(ok ? 0 : 1);
    }
}
