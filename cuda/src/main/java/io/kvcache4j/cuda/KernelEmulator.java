package io.kvcache4j.cuda;

import io.kvcache4j.api.KvDType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A Java twin of every kernel in {@code src/main/cuda/kv_attention.cu}, step by step: the same
 * chunks, the same tiles of {@value #TILE} slots dealt to {@value #WARPS} warps, the same per-lane
 * running sums reduced by the same xor butterfly, the same warp merge and chunk combine orders, the
 * same {@code fmaf}s and the same {@code exp} ({@link #exp}, kv-api's {@code SoftmaxExp}). With the
 * kernels compiled {@code -fmad=false}, GPU and emulation differ only where CUDA's {@code logf} and
 * {@link StrictMath#log} round differently (at most one ulp of a log-sum-exp), so the CPU build tests
 * the kernels' algorithm (flash-decoding split, online softmax, log-sum-exp merges) and the GPU
 * tests compare the device against this class.
 *
 * <p>Arguments mirror the kernels' (pointers become memory segments, little-endian); every method
 * runs all blocks of one launch. See Dao et al., FlashDecoding (2023), for the split-K scheme.
 */
public final class KernelEmulator {
    /** Warps per decode block. */
    public static final int WARPS = 4;
    /** Slots per warp tile. */
    public static final int TILE = 32;
    /** Largest GQA group the decode kernels handle. */
    public static final int MAX_GROUP = 8;
    /** Largest head dimension of the exact decode kernels. */
    public static final int MAX_HEAD_DIM = 256;
    /** Largest head dimension of the int4 decode kernel. */
    public static final int MAX_HEAD_DIM_INT4 = 128;

    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private KernelEmulator() {}

    /** The kernels' {@code kexp}: bit for bit kv-api's {@code SoftmaxExp.exp} (Cody and Waite). */
    public static float exp(float x) {
        x = Math.min(Math.max(x, -104f), 89f);
        float t = Math.fma(x, 0x1.715476p0f, 0x1.8p23f);
        float kf = t - 0x1.8p23f;
        int n = Float.floatToRawIntBits(t) - 0x4b400000;
        float r = Math.fma(kf, -0x1.62e43p-1f, x);
        r = Math.fma(kf, 0x1.05c61p-29f, r);
        float p = Math.fma(r, 0x1.a01a02p-13f, 0x1.6c16c2p-10f);
        p = Math.fma(p, r, 0x1.111112p-7f);
        p = Math.fma(p, r, 0x1.555556p-5f);
        p = Math.fma(p, r, 0x1.555556p-3f);
        p = Math.fma(p, r, 0x1.0p-1f);
        p = Math.fma(p, r, 1f);
        p = Math.fma(p, r, 1f);
        int n1 = n >> 1;
        return p * Float.intBitsToFloat((n1 + 127) << 23) * Float.intBitsToFloat((n - n1 + 127) << 23);
    }

    /** The kernels' {@code logf} (CUDA's is within one ulp of this). */
    static float log(float x) {
        return (float) StrictMath.log(x);
    }

    /** A warp's {@code __shfl_xor_sync} sum butterfly (offsets 16, 8, 4, 2, 1); every lane ends equal. */
    static float warpSum(float[] lanes) {
        float[] x = lanes.clone();
        float[] y = new float[TILE];
        for (int o = 16; o > 0; o >>= 1) {
            for (int i = 0; i < TILE; i++) {
                y[i] = x[i] + x[i ^ o];
            }
            float[] s = x;
            x = y;
            y = s;
        }
        return x[0];
    }

    /**
     * The {@code chunk} argument of the exact decode kernels that asks for chunks sized by each (token,
     * KV head)'s own visible count ({@link #chunkFor}), instead of one fixed size.
     */
    public static final int CHUNK_BY_LENGTH = 0;

    /** Smallest and largest chunk of {@link #chunkFor}, and the chunk count it aims at. */
    static final int MIN_CHUNK = 1024, MAX_CHUNK = 8192, TARGET_CHUNKS = 32;

    /**
     * Slots per chunk for a head that sees {@code visible} slots: the smallest power of two from {@value
     * #MIN_CHUNK} to {@value #MAX_CHUNK} that cuts it into at most {@value #TARGET_CHUNKS} chunks (the
     * largest where none does). A function of the visible count alone, as {@code chunk_for} in {@code
     * kv_attention.cu}: short heads get many small chunks (enough blocks to fill the GPU), long heads
     * long chunks (less per-block overhead).
     */
    public static int chunkFor(int visible) {
        int c = MIN_CHUNK;
        while (c < MAX_CHUNK && (long) c * TARGET_CHUNKS < visible) {
            c <<= 1;
        }
        return c;
    }

    /** The exact decode kernels' {@code chunk}: a number of slots, or {@link #CHUNK_BY_LENGTH}. */
    static void checkExactChunk(int chunk) {
        if (chunk < 0) {
            throw new IllegalArgumentException(
                    "chunk must be a number of slots, or 0 for chunks sized by each head's visible count, was "
                            + chunk);
        }
    }

    /**
     * The int4 kernels' {@code chunk}: a positive multiple of 32 slots (a tile never crosses a KIVI
     * group), or {@link #CHUNK_BY_LENGTH}.
     */
    static void checkInt4Chunk(int chunk) {
        if (chunk < 0 || chunk % 32 != 0) {
            throw new IllegalArgumentException("the int4 decode kernels take a positive multiple of 32 slots, or 0 for"
                    + " chunks sized by each head's visible count, was " + chunk);
        }
    }

    /** Chunks of a head that sees {@code visible} slots, cut at {@code chunk} or {@link #CHUNK_BY_LENGTH}. */
    public static int chunks(int visible, int chunk) {
        int c = chunk == CHUNK_BY_LENGTH ? chunkFor(visible) : chunk;
        return (visible + c - 1) / c;
    }

    /** Where one (layer, KV head)'s rows live: keys and values row-major {@code [slot][headDim]}. */
    public record ExactHead(MemorySegment keys, MemorySegment values) {}

    /**
     * {@code kv_decode_f16} / {@code kv_decode_bf16}: grid {@code (maxChunks, kvHeads, tokens)}. Writes
     * the partial of chunk {@code c} of (token {@code t}, query head {@code qh}) at {@code
     * partOut[((t·QH + qh)·maxChunks + c)·D ..]} and {@code partLse[(t·QH + qh)·maxChunks + c]}.
     * {@code chunk} is a fixed number of slots or {@link #CHUNK_BY_LENGTH}.
     */
    public static void decodeExact(
            KvDType type,
            ExactHead[] heads,
            MemorySegment queries,
            MemorySegment visible,
            MemorySegment partOut,
            MemorySegment partLse,
            int tokens,
            int group,
            int headDim,
            int chunk,
            int maxChunks,
            float scale) {
        checkExactChunk(chunk);
        if (type == KvDType.F32) {
            throw new IllegalArgumentException("the exact decode kernels read f16 or bf16 rows");
        }
        int e = type.bytes();
        RowSource src = (h, slot, i, value) -> {
            long at = ((long) slot * headDim + i) * e;
            MemorySegment seg = value ? heads[h].values() : heads[h].keys();
            short bits = seg.get(I16, at);
            return decode(type, bits);
        };
        Scorer scorer = (h, slot, q, g, d) -> {
            float s = 0f;
            for (int i = 0; i < d; i++) {
                s = Math.fma(q[g * d + i], src.value(h, slot, i, false), s);
            }
            return s;
        };
        decode(
                heads.length,
                scorer,
                src,
                queries,
                visible,
                partOut,
                partLse,
                tokens,
                group,
                headDim,
                chunk,
                maxChunks,
                scale);
    }

    /**
     * {@code kv_decode_int4}: the same blocking over KIVI int4 groups stored contiguously per head
     * (layout of {@link KiviLayout}); slot {@code s} is token {@code s % groupTokens} of group {@code s
     * / groupTokens}.
     */
    public static void decodeInt4(
            MemorySegment[] groups,
            KiviLayout layout,
            MemorySegment queries,
            MemorySegment visible,
            MemorySegment partOut,
            MemorySegment partLse,
            int tokens,
            int group,
            int chunk,
            int maxChunks,
            float scale) {
        checkInt4Chunk(chunk);
        int d = layout.headDim();
        RowSource src = (h, slot, i, value) -> {
            if (!value) {
                throw new IllegalStateException("keys are scored on the codes");
            }
            return layout.value(groups[h], slot, i);
        };
        Scorer scorer = (h, slot, q, g, dd) -> layout.score(groups[h], slot, q, g * dd);
        decode(
                groups.length,
                scorer,
                src,
                queries,
                visible,
                partOut,
                partLse,
                tokens,
                group,
                d,
                chunk,
                maxChunks,
                scale);
    }

    /** Element {@code i} of the key ({@code value} false) or value row of {@code slot} of KV head {@code h}. */
    interface RowSource {
        float value(int h, int slot, int i, boolean value);
    }

    /** One lane's score of {@code slot} for query head {@code g} of the group ({@code q} scaled, {@code [G][d]}). */
    interface Scorer {
        float score(int h, int slot, float[] q, int g, int d);
    }

    private static void decode(
            int kvHeads,
            Scorer scorer,
            RowSource src,
            MemorySegment queries,
            MemorySegment visible,
            MemorySegment partOut,
            MemorySegment partLse,
            int tokens,
            int G,
            int D,
            int chunk,
            int maxChunks,
            float scale) {
        int qh = kvHeads * G;
        float[] q = new float[G * D];
        float[][] wm = new float[WARPS][G];
        float[][] wl = new float[WARPS][G];
        float[][][] wacc = new float[WARPS][G][D];
        float[][] lLane = new float[G][TILE];
        float[][] s = new float[G][TILE];
        float[][] p = new float[G][TILE];
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < kvHeads; h++) {
                int vis = visible.get(I32, 4L * (t * kvHeads + h));
                int ch = chunk == CHUNK_BY_LENGTH ? chunkFor(vis) : chunk;
                for (int c = 0; c < maxChunks; c++) {
                    int from = c * ch;
                    int to = Math.min(vis, from + ch);
                    long row0 = (long) (t * qh + h * G) * maxChunks + c;
                    if (from >= to) {
                        for (int g = 0; g < G; g++) {
                            long row = row0 + (long) g * maxChunks;
                            for (int i = 0; i < D; i++) {
                                partOut.set(F32, 4L * (row * D + i), 0f);
                            }
                            partLse.set(F32, 4L * row, Float.NEGATIVE_INFINITY);
                        }
                        continue;
                    }
                    for (int i = 0; i < G * D; i++) {
                        q[i] = queries.get(F32, 4L * ((long) (t * qh + h * G) * D + i)) * scale;
                    }
                    int tiles = (to - from + TILE - 1) / TILE;
                    for (int w = 0; w < WARPS; w++) {
                        float[] m = wm[w];
                        java.util.Arrays.fill(m, Float.NEGATIVE_INFINITY);
                        for (int g = 0; g < G; g++) {
                            java.util.Arrays.fill(lLane[g], 0f);
                            java.util.Arrays.fill(wacc[w][g], 0f);
                        }
                        for (int tile = w; tile < tiles; tile += WARPS) {
                            int slot0 = from + tile * TILE;
                            int nValid = Math.min(TILE, to - slot0);
                            for (int j = 0; j < nValid; j++) {
                                for (int g = 0; g < G; g++) {
                                    s[g][j] = scorer.score(h, slot0 + j, q, g, D);
                                }
                            }
                            for (int g = 0; g < G; g++) {
                                float tmax = Float.NEGATIVE_INFINITY;
                                for (int j = 0; j < nValid; j++) {
                                    tmax = Math.max(tmax, s[g][j]);
                                }
                                float mNew = Math.max(m[g], tmax);
                                float corr = exp(m[g] - mNew);
                                for (int j = 0; j < TILE; j++) {
                                    p[g][j] = j < nValid ? exp(s[g][j] - mNew) : 0f;
                                    lLane[g][j] = lLane[g][j] * corr + p[g][j];
                                }
                                float[] acc = wacc[w][g];
                                for (int i = 0; i < D; i++) {
                                    acc[i] = acc[i] * corr;
                                }
                                m[g] = mNew;
                            }
                            for (int j = 0; j < nValid; j++) {
                                for (int i = 0; i < D; i++) {
                                    float v = src.value(h, slot0 + j, i, true);
                                    for (int g = 0; g < G; g++) {
                                        wacc[w][g][i] = Math.fma(p[g][j], v, wacc[w][g][i]);
                                    }
                                }
                            }
                        }
                        for (int g = 0; g < G; g++) {
                            wl[w][g] = warpSum(lLane[g]);
                        }
                    }
                    for (int g = 0; g < G; g++) {
                        long row = row0 + (long) g * maxChunks;
                        float mx = Float.NEGATIVE_INFINITY;
                        for (int w = 0; w < WARPS; w++) {
                            mx = Math.max(mx, wm[w][g]);
                        }
                        float[] cw = new float[WARPS];
                        for (int w = 0; w < WARPS; w++) {
                            cw[w] = exp(wm[w][g] - mx);
                        }
                        float l = 0f;
                        for (int w = 0; w < WARPS; w++) {
                            l = Math.fma(wl[w][g], cw[w], l);
                        }
                        float inv = 1f / l;
                        for (int i = 0; i < D; i++) {
                            float a = 0f;
                            for (int w = 0; w < WARPS; w++) {
                                a = Math.fma(wacc[w][g][i], cw[w], a);
                            }
                            partOut.set(F32, 4L * (row * D + i), a * inv);
                        }
                        partLse.set(F32, 4L * row, mx + log(l));
                    }
                }
            }
        }
    }

    /**
     * {@code kv_combine} ({@code extraOut == null}) and {@code kv_combine_hybrid}: for each of {@code
     * rows} (token, query head) rows, the log-sum-exp merge of its {@code maxChunks} partials in chunk
     * order, then of the extra partial {@code extraOut[row·D ..]}, {@code extraLse[row]} if given.
     */
    public static void combine(
            MemorySegment partOut,
            MemorySegment partLse,
            MemorySegment extraOut,
            MemorySegment extraLse,
            MemorySegment out,
            MemorySegment lse,
            int rows,
            int maxChunks,
            int D) {
        float[] pl = new float[maxChunks];
        for (int row = 0; row < rows; row++) {
            for (int c = 0; c < maxChunks; c++) {
                pl[c] = partLse.get(F32, 4L * ((long) row * maxChunks + c));
            }
            float xl = extraLse != null ? extraLse.get(F32, 4L * row) : Float.NEGATIVE_INFINITY;
            float mx = Float.NEGATIVE_INFINITY;
            for (int c = 0; c < maxChunks; c++) {
                mx = Math.max(mx, pl[c]);
            }
            mx = Math.max(mx, xl);
            if (mx == Float.NEGATIVE_INFINITY) {
                for (int i = 0; i < D; i++) {
                    out.set(F32, 4L * ((long) row * D + i), 0f);
                }
                lse.set(F32, 4L * row, Float.NEGATIVE_INFINITY);
                continue;
            }
            float sum = 0f;
            for (int c = 0; c < maxChunks; c++) {
                if (pl[c] != Float.NEGATIVE_INFINITY) {
                    sum = sum + exp(pl[c] - mx);
                }
            }
            if (xl != Float.NEGATIVE_INFINITY) {
                sum = sum + exp(xl - mx);
            }
            float total = mx + log(sum);
            for (int i = 0; i < D; i++) {
                float a = 0f;
                for (int c = 0; c < maxChunks; c++) {
                    if (pl[c] != Float.NEGATIVE_INFINITY) {
                        float o = partOut.get(F32, 4L * (((long) row * maxChunks + c) * D + i));
                        a = Math.fma(exp(pl[c] - total), o, a);
                    }
                }
                if (xl != Float.NEGATIVE_INFINITY) {
                    a = Math.fma(exp(xl - total), extraOut.get(F32, 4L * ((long) row * D + i)), a);
                }
                out.set(F32, 4L * ((long) row * D + i), a);
            }
            lse.set(F32, 4L * row, total);
        }
    }

    /**
     * {@code kv_append_f16} / {@code kv_append_bf16}: f32 keys {@code [tokens][D]} then values at
     * {@code src}, rounded to nearest-even into rows {@code [row0, row0 + tokens)}.
     */
    public static void append(
            KvDType type, MemorySegment src, int tokens, int D, MemorySegment keys, MemorySegment values, int row0) {
        long n = (long) tokens * D;
        for (long e = 0; e < n; e++) {
            keys.set(I16, 2 * ((long) row0 * D + e), encode(type, src.get(F32, 4 * e)));
            values.set(I16, 2 * ((long) row0 * D + e), encode(type, src.get(F32, 4 * (n + e))));
        }
    }

    static short encode(KvDType type, float x) {
        return type == KvDType.F16 ? Float.floatToFloat16(x) : KvDType.floatToBf16Bits(x);
    }

    /** The value of a stored f16 or bf16 element (the inverse of {@link #encode} on its results). */
    static float decode(KvDType type, short bits) {
        return type == KvDType.F16 ? Float.float16ToFloat(bits) : KvDType.bf16BitsToFloat(bits);
    }

    /** {@code kv_gather_rows}: dst row {@code j} = src row {@code sources[j]}, rows of {@code elems} 16-bit elements. */
    public static void gather(MemorySegment src, MemorySegment dst, MemorySegment sources, int moved, int elems) {
        long rowBytes = 2L * elems;
        for (int j = 0; j < moved; j++) {
            int s = sources.get(I32, 4L * j);
            MemorySegment.copy(src, s * rowBytes, dst, j * rowBytes, rowBytes);
        }
    }
}
