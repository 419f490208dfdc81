package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * Runs each kernel on any {@link Device} over given inputs and reads the results back: the code
 * that the GPU tests and {@link DeviceCheck} use to put a GPU and the {@link EmulatedDevice} side by
 * side on the same random inputs, and that the CPU tests use against float64 references.
 */
public final class KernelHarness {
    private static final ValueLayout.OfFloat F32 = KernelEmulator.F32;

    private KernelHarness() {}

    /**
     * A decode problem: {@code tokens} query tokens over {@code kvHeads} heads of {@code slots} rows
     * each (raw 16-bit elements, keys then values row-major), token {@code t} of head {@code h} seeing
     * {@code visible[t·kvHeads + h]} slots.
     */
    public record Problem(
            KvDType type,
            int tokens,
            int kvHeads,
            int group,
            int headDim,
            int slots,
            short[][] keys,
            short[][] values,
            float[] queries,
            int[] visible,
            float scale) {
        /** Query heads: {@code kvHeads × group}. */
        public int queryHeads() {
            return kvHeads * group;
        }

        /** Element {@code i} of key ({@code value} false) or value row {@code slot} of head {@code h}, as a float. */
        public float element(int h, int slot, int i, boolean value) {
            short b = (value ? values : keys)[h][slot * headDim + i];
            return KernelEmulator.decode(type, b);
        }
    }

    /** Outputs {@code [tokens][QH][D]} and log-sum-exps {@code [tokens][QH]}. */
    public record Result(float[] out, float[] lse) {}

    /** Random rows in {@code [-1, 1)}, queries in {@code [-qScale, qScale)}, the given visible counts. */
    public static Problem random(
            KvDType type,
            int tokens,
            int kvHeads,
            int group,
            int headDim,
            int slots,
            int[] visible,
            float qScale,
            long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        short[][] k = new short[kvHeads][slots * headDim];
        short[][] v = new short[kvHeads][slots * headDim];
        for (int h = 0; h < kvHeads; h++) {
            for (int e = 0; e < slots * headDim; e++) {
                k[h][e] = KernelEmulator.encode(type, (float) (r.nextDouble() * 2 - 1));
                v[h][e] = KernelEmulator.encode(type, (float) (r.nextDouble() * 2 - 1));
            }
        }
        float[] q = new float[tokens * kvHeads * group * headDim];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) ((r.nextDouble() * 2 - 1) * qScale);
        }
        return new Problem(
                type, tokens, kvHeads, group, headDim, slots, k, v, q, visible, (float) (1 / Math.sqrt(headDim)));
    }

    private static long upload(Device dev, Device.HostBuffer host, MemorySegment src) {
        long ptr = dev.malloc(Math.max(1, src.byteSize()));
        MemorySegment.copy(src, 0, host.segment(), 0, src.byteSize());
        dev.copyToDevice(ptr, host, 0, src.byteSize());
        dev.synchronize();
        return ptr;
    }

    /** {@code kv_decode_*} then {@code kv_combine} (or {@code kv_combine_hybrid} with {@code extra}) on {@code dev}. */
    public static Result decode(Device dev, Problem p, int chunk, Result extra) {
        int maxChunks = 1;
        for (int v : p.visible()) {
            maxChunks = Math.max(maxChunks, KernelEmulator.chunks(v, chunk));
        }
        int rows = p.tokens() * p.queryHeads();
        int d = p.headDim();
        long rowsBytes = 2L * p.slots() * d;
        long hostBytes = Math.max(Math.max(rowsBytes, 4L * rows * d), 16L * p.kvHeads()) + 4L * rows;
        Device.HostBuffer host = dev.allocHost(hostBytes);
        java.util.List<Long> allocs = new java.util.ArrayList<>();
        try {
            MemorySegment table = MemorySegment.ofArray(new long[2 * p.kvHeads()]);
            for (int h = 0; h < p.kvHeads(); h++) {
                long k = upload(dev, host, MemorySegment.ofArray(p.keys()[h]));
                long v = upload(dev, host, MemorySegment.ofArray(p.values()[h]));
                allocs.add(k);
                allocs.add(v);
                table.setAtIndex(ValueLayout.JAVA_LONG, 2 * h, k);
                table.setAtIndex(ValueLayout.JAVA_LONG, 2 * h + 1, v);
            }
            long tablePtr = upload(dev, host, table);
            long q = upload(dev, host, MemorySegment.ofArray(p.queries()));
            long vis = upload(dev, host, MemorySegment.ofArray(p.visible()));
            long partOut = dev.malloc(4L * rows * maxChunks * d);
            long partLse = dev.malloc(4L * rows * maxChunks);
            long out = dev.malloc(4L * rows * d);
            long lse = dev.malloc(4L * rows);
            allocs.addAll(java.util.List.of(tablePtr, q, vis, partOut, partLse, out, lse));
            long xo = 0;
            long xl = 0;
            if (extra != null) {
                xo = upload(dev, host, MemorySegment.ofArray(extra.out()));
                xl = upload(dev, host, MemorySegment.ofArray(extra.lse()));
                allocs.add(xo);
                allocs.add(xl);
            }
            dev.decodeExact(
                    p.type(),
                    tablePtr,
                    p.kvHeads(),
                    q,
                    vis,
                    partOut,
                    partLse,
                    p.tokens(),
                    p.group(),
                    d,
                    chunk,
                    maxChunks,
                    p.scale());
            dev.combine(partOut, partLse, xo, xl, out, lse, rows, maxChunks, d);
            return download(dev, host, out, lse, rows, d);
        } finally {
            for (long a : allocs) {
                dev.free(a);
            }
            dev.freeHost(host);
        }
    }

    private static Result download(Device dev, Device.HostBuffer host, long out, long lse, int rows, int d) {
        dev.copyToHost(host, 0, out, 4L * rows * d);
        dev.copyToHost(host, 4L * rows * d, lse, 4L * rows);
        dev.synchronize();
        float[] o = new float[rows * d];
        float[] l = new float[rows];
        MemorySegment.copy(host.segment(), F32, 0, o, 0, o.length);
        MemorySegment.copy(host.segment(), F32, 4L * rows * d, l, 0, l.length);
        return new Result(o, l);
    }

    /** An int4 problem: per head, {@code groups} KIVI groups back to back, and the queries and visible counts. */
    public record Int4Problem(
            KiviLayout layout,
            int tokens,
            int kvHeads,
            int group,
            MemorySegment[] groups,
            float[] queries,
            int[] visible,
            float scale) {}

    /** Random KIVI groups quantized from rows in {@code [-1, 1)} (per head {@code slots}, a multiple of {@code G}). */
    public static Int4Problem randomInt4(
            KiviLayout layout, int tokens, int kvHeads, int group, int slots, int[] visible, float qScale, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int g = layout.groupTokens();
        int d = layout.headDim();
        if (slots % g != 0) {
            throw new IllegalArgumentException("slots must be whole groups of " + g + ", was " + slots);
        }
        MemorySegment[] segs = new MemorySegment[kvHeads];
        float[] k = new float[g * d];
        float[] v = new float[g * d];
        for (int h = 0; h < kvHeads; h++) {
            segs[h] = MemorySegment.ofArray(new long[(int) ((slots / g * layout.groupBytes() + 7) / 8)]);
            for (int grp = 0; grp < slots / g; grp++) {
                for (int e = 0; e < g * d; e++) {
                    k[e] = (float) (r.nextDouble() * 2 - 1);
                    v[e] = (float) (r.nextDouble() * 2 - 1);
                }
                layout.quantize(k, v, segs[h], grp);
            }
        }
        float[] q = new float[tokens * kvHeads * group * d];
        for (int i = 0; i < q.length; i++) {
            q[i] = (float) ((r.nextDouble() * 2 - 1) * qScale);
        }
        return new Int4Problem(layout, tokens, kvHeads, group, segs, q, visible, (float) (1 / Math.sqrt(d)));
    }

    /** {@code kv_decode_int4} then {@code kv_combine} on {@code dev}. */
    public static Result decodeInt4(Device dev, Int4Problem p, int chunk) {
        int maxChunks = 1;
        for (int v : p.visible()) {
            maxChunks = Math.max(maxChunks, KernelEmulator.chunks(v, chunk));
        }
        int d = p.layout().headDim();
        int rows = p.tokens() * p.kvHeads() * p.group();
        long hostBytes = 4L * rows * d + 4L * rows + 8L * p.kvHeads() + 4L * p.visible().length;
        for (MemorySegment s : p.groups()) {
            hostBytes = Math.max(hostBytes, s.byteSize());
        }
        Device.HostBuffer host = dev.allocHost(hostBytes);
        java.util.List<Long> allocs = new java.util.ArrayList<>();
        try {
            MemorySegment table = MemorySegment.ofArray(new long[p.kvHeads()]);
            for (int h = 0; h < p.kvHeads(); h++) {
                long g = upload(dev, host, p.groups()[h]);
                allocs.add(g);
                table.setAtIndex(ValueLayout.JAVA_LONG, h, g);
            }
            long tablePtr = upload(dev, host, table);
            long q = upload(dev, host, MemorySegment.ofArray(p.queries()));
            long vis = upload(dev, host, MemorySegment.ofArray(p.visible()));
            long partOut = dev.malloc(4L * rows * maxChunks * d);
            long partLse = dev.malloc(4L * rows * maxChunks);
            long out = dev.malloc(4L * rows * d);
            long lse = dev.malloc(4L * rows);
            allocs.addAll(java.util.List.of(tablePtr, q, vis, partOut, partLse, out, lse));
            dev.decodeInt4(
                    tablePtr,
                    p.kvHeads(),
                    p.layout(),
                    q,
                    vis,
                    partOut,
                    partLse,
                    p.tokens(),
                    p.group(),
                    chunk,
                    maxChunks,
                    p.scale());
            dev.combine(partOut, partLse, 0, 0, out, lse, rows, maxChunks, d);
            return download(dev, host, out, lse, rows, d);
        } finally {
            for (long a : allocs) {
                dev.free(a);
            }
            dev.freeHost(host);
        }
    }

    /**
     * Largest relative error of {@code actual} against {@code expected}: per (token, query head) row,
     * {@code max|a − e| / max(max|e|, 1e-30)}; rows whose expected lse is {@code −∞} must be zero.
     */
    public static double relativeError(Result actual, Result expected, int headDim) {
        double worst = 0;
        for (int row = 0; row < expected.lse().length; row++) {
            double scale = 1e-30;
            double diff = 0;
            for (int i = 0; i < headDim; i++) {
                scale = Math.max(scale, Math.abs(expected.out()[row * headDim + i]));
                diff = Math.max(diff, Math.abs(actual.out()[row * headDim + i] - expected.out()[row * headDim + i]));
            }
            worst = Math.max(worst, diff / scale);
        }
        return worst;
    }

    /** Largest absolute difference of the log-sum-exps ({@code −∞} must match {@code −∞}: else infinity). */
    public static double lseError(Result actual, Result expected) {
        double worst = 0;
        for (int i = 0; i < expected.lse().length; i++) {
            float a = actual.lse()[i];
            float e = expected.lse()[i];
            if (a == e) {
                continue;
            }
            worst = Math.max(worst, Math.abs((double) a - e));
        }
        return worst;
    }
}
