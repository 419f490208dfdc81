package io.kvcache4j.quantization;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.KeyScoring;
import io.kvcache4j.store.NativeMemory;
import io.kvcache4j.store.SlotSelection;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * 1-bit keys and values of one (layer, KV head), quantized per channel over groups of {@code G}
 * tokens as in Zhang et al., "From 16-Bit to 1-Bit: Visual KV Cache Quantization for
 * Memory-Efficient Multimodal Large Language Models" (arXiv:2502.14882; see {@link OneBitConfig} for
 * the two ways of choosing the levels and the defaults). Attention runs on the packed bits ({@link
 * OneBitKernel}); nothing is dequantized.
 *
 * <p><b>Residual window.</b> A channel's levels need all {@code G} tokens of its group, so the
 * newest {@code count mod G} tokens (the incomplete last group, fewer than {@code G}) stay exact in
 * binary16, as KIVI keeps its key window until a group is full; the group is quantized from these
 * binary16 rows when its last token arrives. The residual block has kv-api's page layout ({@code
 * [keys: d × G, dimension-major][values: G × d]}, binary16) and is scored by kv-api's attention
 * kernel.
 *
 * <p><b>Memory.</b> One off-heap block per complete group, {@link #groupBytes} bytes: value codes
 * ({@code G} rows of {@code ⌈d/64⌉} longs, channel {@code c} at bit {@code c & 63} of word {@code c
 * >>> 6}), key codes ({@code G/16} blocks of {@code d} 16-bit words, bit {@code j} of word {@code
 * (b, c)} is channel {@code c} of token {@code 16b + j}: lanes of a block of keys), then the binary16
 * levels {@code [key lo][key hi][value lo][value hi]} of the {@code d} channels; and while the last
 * group is incomplete one residual block of {@link #residualBytes} bytes. Blocks come from {@link
 * NativeMemory} and are rounded up to its alignment; {@link #bytesHeld()} is their exact sum.
 * Compaction only moves whole groups, i.e. block references, and frees the removed groups' blocks
 * at once.
 *
 * <p><b>Granularity</b> is {@code G}: only whole aligned complete groups leave.
 *
 * <p>Ownership: the store owns its blocks and frees them in {@link #close()}. Driven by one thread at
 * a time, except that attention and scoring passes (which only read it) may run concurrently, each
 * with its thread's scratch.
 */
public final class OneBitHeadStore implements HeadStore, KeyScoring {
    private static final int BLOCK = GroupAttention.BLOCK;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** Largest binary16 value: the residual rows are binary16. */
    private static final float MAX_F16 = 65504f;

    private final OneBitConfig config;
    private final int d;
    private final int groupTokens;
    private final int words;
    private final long keyCodesOffset;
    private final long levelsOffset;
    private final long groupBytes;
    private final long residualBytes;
    private final long residualRowBytes;
    private final long residualValuesOffset;
    private final OneBitKernel kernel;
    private final AttentionKernel residualKernel;
    private final ConversionSupport conversion =
            VectorizationProvider.getInstance().conversion();

    private MemorySegment[] groups = new MemorySegment[4];
    private int groupCount;
    private MemorySegment residual;
    private int count;
    private boolean closed;

    // quantization scratch
    private float[] groupKeys;
    private float[] groupValues;
    private float[] channel;
    private float[] sorted;

    /**
     * Creates an empty store for rows of {@code headDim} elements.
     *
     * @param kernel scores and weighted sums on the packed groups
     * @param residualKernel attention over the binary16 residual rows
     */
    public OneBitHeadStore(OneBitConfig config, int headDim, OneBitKernel kernel, AttentionKernel residualKernel) {
        if (headDim <= 0) {
            throw new IllegalArgumentException("headDim must be >= 1, was " + headDim);
        }
        this.config = java.util.Objects.requireNonNull(config, "config");
        this.kernel = java.util.Objects.requireNonNull(kernel, "kernel");
        this.residualKernel = java.util.Objects.requireNonNull(residualKernel, "residualKernel");
        this.d = headDim;
        this.groupTokens = config.groupTokens();
        this.words = (headDim + 63) >>> 6;
        this.keyCodesOffset = 8L * groupTokens * words;
        this.levelsOffset = keyCodesOffset + 2L * (groupTokens / BLOCK) * headDim;
        this.groupBytes = groupBytes(headDim, groupTokens);
        this.residualBytes = residualBytes(headDim, groupTokens);
        this.residualRowBytes = 2L * headDim;
        this.residualValuesOffset = 2L * headDim * groupTokens;
    }

    /**
     * Bytes of the block of one complete group: {@code 8·G·⌈d/64⌉} (value codes) {@code + G·d/8} (key
     * codes) {@code + 8·d} (four binary16 levels per channel), rounded up to {@link
     * NativeMemory#ALIGNMENT}.
     */
    public static long groupBytes(int headDim, int groupTokens) {
        OneBitConfig.checkGroupTokens(groupTokens);
        long raw = 8L * groupTokens * ((headDim + 63) >>> 6) + (long) groupTokens * headDim / 8 + 8L * headDim;
        return align(raw);
    }

    /** Bytes of the residual block: {@code G} binary16 keys and values, {@code 4·G·d}, rounded up to the alignment. */
    public static long residualBytes(int headDim, int groupTokens) {
        OneBitConfig.checkGroupTokens(groupTokens);
        return align(4L * groupTokens * headDim);
    }

    private static long align(long bytes) {
        return (bytes + NativeMemory.ALIGNMENT - 1) & -NativeMemory.ALIGNMENT;
    }

    /** The configuration. */
    public OneBitConfig config() {
        return config;
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public int granularity() {
        return groupTokens;
    }

    @Override
    public float maxMagnitude() {
        return MAX_F16;
    }

    @Override
    public long bytesHeld() {
        return groupCount * groupBytes + (residual != null ? residualBytes : 0);
    }

    /** Tokens held exactly in binary16 (the incomplete last group). */
    public int residualTokens() {
        return count - groupCount * groupTokens;
    }

    // ------------------------------------------------------------------ append and quantization

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        ensureOpen();
        for (int t = 0; t < tokens; t++) {
            if (residual == null) {
                residual = NativeMemory.allocate(residualBytes);
            }
            int row = residualTokens();
            int src = t * rowStride;
            conversion.encodeStrided(keys, keysOffset + src, residual, 2L * row, 2L * groupTokens, KvDType.F16, d);
            conversion.encode(
                    values,
                    valuesOffset + src,
                    residual,
                    residualValuesOffset + row * residualRowBytes,
                    KvDType.F16,
                    d);
            count++;
            if (row + 1 == groupTokens) {
                quantizeResidual();
            }
        }
    }

    /** Quantizes the full residual block into a new group block and frees the residual. */
    private void quantizeResidual() {
        int g = groupTokens;
        if (groupKeys == null) {
            groupKeys = new float[g * d];
            groupValues = new float[g * d];
            channel = new float[g];
            sorted = new float[g];
        }
        // keys dimension-major (channel c at [c·G, (c+1)·G)), values token-major
        conversion.decode(residual, 0, KvDType.F16, groupKeys, 0, g * d);
        conversion.decode(residual, residualValuesOffset, KvDType.F16, groupValues, 0, g * d);
        MemorySegment block = NativeMemory.allocate(groupBytes);
        block.fill((byte) 0);
        for (int c = 0; c < d; c++) {
            System.arraycopy(groupKeys, c * g, channel, 0, g);
            short lo16;
            short hi16;
            if (config.mode() == OneBitConfig.Mode.GROUP) {
                lo16 = clippedLevel(channel, config.keyClip(), false);
                hi16 = clippedLevel(channel, config.keyClip(), true);
            } else {
                Arrays.sort(channel);
                lo16 = quantileLevel(channel, config.lowQuantile());
                hi16 = quantileLevel(channel, config.highQuantile());
            }
            block.set(I16, levelsOffset + 2L * c, lo16);
            block.set(I16, levelsOffset + 2L * (d + c), hi16);
            float mid = midpoint(lo16, hi16);
            for (int b = 0; b < g / BLOCK; b++) {
                int bits = 0;
                for (int j = 0; j < BLOCK; j++) {
                    if (groupKeys[c * g + b * BLOCK + j] >= mid) {
                        bits |= 1 << j;
                    }
                }
                block.set(I16, keyCodesOffset + 2L * ((long) b * d + c), (short) bits);
            }
        }
        for (int c = 0; c < d; c++) {
            for (int t = 0; t < g; t++) {
                channel[t] = groupValues[t * d + c];
            }
            short lo16;
            short hi16;
            if (config.mode() == OneBitConfig.Mode.GROUP) {
                lo16 = clippedLevel(channel, config.valueClip(), false);
                hi16 = clippedLevel(channel, config.valueClip(), true);
            } else {
                System.arraycopy(channel, 0, sorted, 0, g);
                Arrays.sort(sorted);
                lo16 = quantileLevel(sorted, config.lowQuantile());
                hi16 = quantileLevel(sorted, config.highQuantile());
            }
            block.set(I16, levelsOffset + 2L * (2 * d + c), lo16);
            block.set(I16, levelsOffset + 2L * (3 * d + c), hi16);
            float mid = midpoint(lo16, hi16);
            long bit = 1L << (c & 63);
            for (int t = 0; t < g; t++) {
                if (channel[t] >= mid) {
                    long at = 8L * ((long) t * words + (c >>> 6));
                    block.set(I64, at, block.get(I64, at) | bit);
                }
            }
        }
        if (groupCount == groups.length) {
            groups = Arrays.copyOf(groups, groups.length * 2);
        }
        groups[groupCount++] = block;
        NativeMemory.free(residual);
        residual = null;
    }

    /**
     * The lower or upper level of a group-specific channel: {@code mid ∓ α·(max − min)/2} with {@code
     * mid = (max + min)/2}, computed in double and rounded once to binary16.
     */
    static short clippedLevel(float[] x, float alpha, boolean upper) {
        float min = x[0];
        float max = x[0];
        for (int i = 1; i < x.length; i++) {
            min = Math.min(min, x[i]);
            max = Math.max(max, x[i]);
        }
        double mid = 0.5 * ((double) min + max);
        double half = 0.5 * alpha * ((double) max - min);
        return Float.floatToFloat16((float) (upper ? mid + half : mid - half));
    }

    /**
     * The {@code q} quantile of ascending {@code sorted} with linear interpolation between order
     * statistics ({@code h = (n − 1)·q}), computed in double and rounded once to binary16.
     */
    static short quantileLevel(float[] sorted, float q) {
        double h = (sorted.length - 1) * (double) q;
        int i = (int) Math.floor(h);
        double v = i + 1 < sorted.length ? sorted[i] + (h - i) * ((double) sorted[i + 1] - sorted[i]) : sorted[i];
        return Float.floatToFloat16((float) v);
    }

    /** The decision threshold between two binary16 levels: a value at or above it codes 1. */
    static float midpoint(short lo16, short hi16) {
        return (float) (0.5 * ((double) Float.float16ToFloat(lo16) + Float.float16ToFloat(hi16)));
    }

    // ------------------------------------------------------------------ attention

    /**
     * {@inheritDoc}
     *
     * <p>kv-api's CPU layer source may attend distinct chunks of one long store on several threads at
     * once; the attention scratch is per thread ({@code Pass}) and a pass only reads the store, so the
     * chunks run concurrently (their partials merge in chunk order, so the result does not depend on
     * the thread count).
     */
    @Override
    public void attend(GroupAttention state, SlotSelection selection) {
        ensureOpen();
        if (selection.limit() > count) {
            throw new IllegalArgumentException(
                    "selection reaches slot " + (selection.limit() - 1) + " but the store holds " + count);
        }
        int heads = state.group();
        Pass p = Pass.get(heads, d, words, 2 * residualRowBytes * BLOCK);
        int packed = groupCount * groupTokens;
        if (selection.isRange()) {
            int from = selection.from();
            int to = selection.to();
            int ordinal = 0;
            int end = Math.min(to, packed);
            for (int s = from; s < end; ) {
                int chunk = s & -BLOCK;
                int stop = Math.min(chunk + BLOCK, end);
                int mask = ((1 << (stop - s)) - 1) << (s - chunk);
                packedBlock(p, state, chunk, mask, ordinal);
                ordinal += stop - s;
                s = stop;
            }
            if (to > packed) {
                int a = Math.max(from, packed) - packed;
                int b = to - packed;
                residualKernel.scan(
                        state,
                        residual,
                        2L * a,
                        groupTokens,
                        residualValuesOffset + a * residualRowBytes,
                        KvDType.F16,
                        b - a,
                        ordinal);
            }
            return;
        }
        selection.reset();
        int ordinal = 0;
        int chunk = -1;
        int mask = 0;
        int gathered = 0;
        for (int slot = selection.next(); slot >= 0; slot = selection.next()) {
            if (slot < packed) {
                int c = slot & -BLOCK;
                if (c != chunk) {
                    if (mask != 0) {
                        packedBlock(p, state, chunk, mask, ordinal);
                        ordinal += Integer.bitCount(mask);
                    }
                    chunk = c;
                    mask = 0;
                }
                mask |= 1 << (slot - c);
                continue;
            }
            if (mask != 0) {
                packedBlock(p, state, chunk, mask, ordinal);
                ordinal += Integer.bitCount(mask);
                mask = 0;
            }
            gatherRow(p, slot - packed, gathered);
            if (++gathered == BLOCK) {
                scanGathered(p, state, gathered, ordinal);
                ordinal += gathered;
                gathered = 0;
            }
        }
        if (mask != 0) {
            packedBlock(p, state, chunk, mask, ordinal);
        }
        if (gathered > 0) {
            scanGathered(p, state, gathered, ordinal);
        }
    }

    /**
     * Packed groups block by block with the bit trick of {@link #attend} ({@link OneBitKernel#keyLogits}),
     * residual rows with the residual kernel's {@link AttentionKernel#scores}: the logits attention
     * pushes. Per-thread scratch, as {@link #attend}.
     */
    @Override
    public void scoreKeys(GroupAttention state, int slots, float[] out, int outStride) {
        ensureOpen();
        KeyScoring.check(state, slots, count, d, out, outStride);
        int heads = state.group();
        Pass p = Pass.get(heads, d, words, 2 * residualRowBytes * BLOCK);
        int packed = groupCount * groupTokens;
        int end = Math.min(slots, packed);
        for (int chunk = 0; chunk < end; chunk += BLOCK) {
            int nb = Math.min(BLOCK, end - chunk);
            blockLogits(p, state, chunk, nb == BLOCK ? 0xFFFF : (1 << nb) - 1);
            for (int h = 0; h < heads; h++) {
                System.arraycopy(p.logits, h * BLOCK, out, h * outStride + chunk, nb);
            }
        }
        if (slots > packed) {
            residualKernel.scores(state, residual, 0, groupTokens, KvDType.F16, slots - packed, out, packed, outStride);
        }
    }

    /**
     * One block of keys of a packed group: the tokens {@code chunk + j} for the set bits {@code j} of
     * {@code mask} ({@code chunk} a multiple of {@link GroupAttention#BLOCK}).
     */
    private void packedBlock(Pass p, GroupAttention state, int chunk, int mask, int ordinal) {
        MemorySegment block = blockLogits(p, state, chunk, mask);
        int first = chunk % groupTokens;
        int heads = state.group();
        int nb = Integer.bitCount(mask);
        state.pushLogits(p.logits, nb, ordinal);
        int j = 0;
        for (int m = mask; m != 0; m &= m - 1) {
            int t = first + Integer.numberOfTrailingZeros(m);
            MemorySegment.copy(block, I64, 8L * t * words, p.rows, j * words, words);
            j++;
        }
        kernel.accumulateValues(p.logits, nb, p.rows, words, p.valueLo, p.valueScale, d, heads, state.accumulator());
    }

    /**
     * The logits of the tokens {@code chunk + j} for the set bits {@code j} of {@code mask}, in bit
     * order, into {@code p.logits} (the group's levels loaded and folded first when the pass has not
     * yet); returns the group's block.
     */
    private MemorySegment blockLogits(Pass p, GroupAttention state, int chunk, int mask) {
        int group = chunk / groupTokens;
        int first = chunk - group * groupTokens;
        MemorySegment block = groups[group];
        if (group != p.loadedGroup) {
            loadGroup(p, state, block);
            p.loadedGroup = group;
        }
        long keyBase = keyCodesOffset + 2L * (first / BLOCK) * d;
        for (int c = 0; c < d; c++) {
            int raw = block.get(I16, keyBase + 2L * c) & 0xFFFF;
            p.codes[c] = mask == 0xFFFF ? raw : Integer.compress(raw, mask);
        }
        kernel.keyLogits(p.codes, p.folded, p.beta, d, state.group(), p.logits);
        return block;
    }

    /**
     * Reads a group's levels and folds the key scales into the pass's queries: {@code folded[h·d + c]
     * = q[h·d + c]·s_c}, {@code beta[h] = Σ_c q[h·d + c]·lo_c} (increasing {@code c}, one FMA each).
     */
    private void loadGroup(Pass p, GroupAttention state, MemorySegment block) {
        for (int c = 0; c < d; c++) {
            float klo = Float.float16ToFloat(block.get(I16, levelsOffset + 2L * c));
            float khi = Float.float16ToFloat(block.get(I16, levelsOffset + 2L * (d + c)));
            float vlo = Float.float16ToFloat(block.get(I16, levelsOffset + 2L * (2 * d + c)));
            float vhi = Float.float16ToFloat(block.get(I16, levelsOffset + 2L * (3 * d + c)));
            p.keyLo[c] = klo;
            p.keyScale[c] = khi - klo;
            p.valueLo[c] = vlo;
            p.valueScale[c] = vhi - vlo;
        }
        float[] q = state.queries();
        for (int h = 0; h < state.group(); h++) {
            float b = 0f;
            for (int c = 0; c < d; c++) {
                float qc = q[h * d + c];
                p.folded[h * d + c] = qc * p.keyScale[c];
                b = Math.fma(qc, p.keyLo[c], b);
            }
            p.beta[h] = b;
        }
    }

    /** Copies residual row {@code row} into position {@code n} of the one-block gather page. */
    private void gatherRow(Pass p, int row, int n) {
        long dimStride = 2L * groupTokens;
        for (int i = 0; i < d; i++) {
            MemorySegment.copy(residual, i * dimStride + 2L * row, p.gather, 2L * ((long) i * BLOCK + n), 2);
        }
        MemorySegment.copy(
                residual,
                residualValuesOffset + row * residualRowBytes,
                p.gather,
                residualRowBytes * BLOCK + n * residualRowBytes,
                residualRowBytes);
    }

    private void scanGathered(Pass p, GroupAttention state, int n, int ordinal) {
        residualKernel.scan(state, p.gather, 0, BLOCK, residualRowBytes * BLOCK, KvDType.F16, n, ordinal);
    }

    /**
     * The scratch of one attention or scoring pass, one per thread and grown on demand (never shrunk),
     * so that passes over distinct chunks of one store run concurrently: codes and value rows of a
     * block, a group's levels, the folded queries and the gather page of residual rows.
     */
    private static final class Pass {
        private static final ThreadLocal<Pass> LOCAL = ThreadLocal.withInitial(Pass::new);

        int[] codes = new int[0];
        long[] rows = new long[0];
        float[] keyLo = new float[0];
        float[] keyScale = new float[0];
        float[] valueLo = new float[0];
        float[] valueScale = new float[0];
        float[] folded = new float[0];
        float[] beta = new float[0];
        float[] logits = new float[0];
        /** The group whose levels are loaded and folded in this pass, or -1. */
        int loadedGroup;

        MemorySegment gather = MemorySegment.ofArray(new long[0]);

        /** This thread's scratch for {@code heads} query heads, rows of {@code d}, a new pass begun. */
        static Pass get(int heads, int d, int words, long gatherBytes) {
            Pass p = LOCAL.get();
            if (p.codes.length < d) {
                p.codes = new int[d];
                p.keyLo = new float[d];
                p.keyScale = new float[d];
                p.valueLo = new float[d];
                p.valueScale = new float[d];
            }
            if (p.rows.length < BLOCK * words) {
                p.rows = new long[BLOCK * words];
            }
            if (p.logits.length < heads * BLOCK) {
                p.logits = new float[heads * BLOCK];
            }
            if (p.folded.length < heads * d) {
                p.folded = new float[heads * d];
                p.beta = new float[Math.max(heads, p.beta.length)];
            }
            if (p.beta.length < heads) {
                p.beta = new float[heads];
            }
            if (p.gather.byteSize() < gatherBytes) {
                p.gather = MemorySegment.ofArray(new long[(int) ((gatherBytes + 7) / 8)]);
            }
            p.loadedGroup = -1;
            return p;
        }
    }

    // ------------------------------------------------------------------ reads

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        checkSlot(slot);
        int packed = groupCount * groupTokens;
        if (slot >= packed) {
            conversion.decodeStrided(residual, 2L * (slot - packed), 2L * groupTokens, KvDType.F16, dst, offset, d);
            return;
        }
        MemorySegment block = groups[slot / groupTokens];
        int t = slot % groupTokens;
        long base = keyCodesOffset + 2L * (t / BLOCK) * d;
        int bit = t % BLOCK;
        for (int c = 0; c < d; c++) {
            boolean set = ((block.get(I16, base + 2L * c) >>> bit) & 1) != 0;
            dst[offset + c] = Float.float16ToFloat(block.get(I16, levelsOffset + 2L * ((set ? d : 0) + c)));
        }
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        checkSlot(slot);
        int packed = groupCount * groupTokens;
        if (slot >= packed) {
            conversion.decode(
                    residual, residualValuesOffset + (slot - packed) * residualRowBytes, KvDType.F16, dst, offset, d);
            return;
        }
        MemorySegment block = groups[slot / groupTokens];
        long row = 8L * (slot % groupTokens) * words;
        for (int c = 0; c < d; c++) {
            boolean set = ((block.get(I64, row + 8L * (c >>> 6)) >>> (c & 63)) & 1) != 0;
            dst[offset + c] = Float.float16ToFloat(block.get(I16, levelsOffset + 2L * ((set ? 3 : 2) * d + c)));
        }
    }

    // ------------------------------------------------------------------ compaction and release

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        ensureOpen();
        int g = groupTokens;
        if (from < 0 || moved < 0 || from + moved > newCount || newCount > count) {
            throw new IllegalArgumentException("compact(from " + from + ", moved " + moved + ", newCount " + newCount
                    + ") out of range for " + count + " slots");
        }
        if (from % g != 0 || (count - newCount) % g != 0) {
            throw new IllegalArgumentException("compact(from " + from + ", newCount " + newCount + ") on " + count
                    + " slots must keep whole groups of " + g);
        }
        int oldGroups = groupCount;
        int newGroups = newCount / g;
        MemorySegment[] next = new MemorySegment[Math.max(4, groups.length)];
        boolean[] kept = new boolean[oldGroups];
        for (int k = 0; k < from / g; k++) {
            next[k] = groups[k];
            kept[k] = true;
        }
        for (int j = 0; j < moved; j += g) {
            int src = sources[j];
            if (src % g != 0) {
                throw new IllegalArgumentException(
                        "source " + src + " of slot " + (from + j) + " is not a group start");
            }
            int sk = src / g;
            int dk = (from + j) / g;
            if (sk < oldGroups) {
                next[dk] = groups[sk];
                kept[sk] = true;
            } else if (dk != newGroups) {
                throw new IllegalArgumentException(
                        "the incomplete last group must stay last; moved to slot " + (from + j));
            }
        }
        for (int k = (from + moved + g - 1) / g; k < newGroups; k++) {
            next[k] = groups[k];
            kept[k] = true;
        }
        for (int k = 0; k < oldGroups; k++) {
            if (!kept[k]) {
                NativeMemory.free(groups[k]);
            }
        }
        groups = next;
        groupCount = newGroups;
        count = newCount;
        if (residual != null && newCount % g == 0) {
            NativeMemory.free(residual);
            residual = null;
        }
    }

    private void checkSlot(int slot) {
        ensureOpen();
        if (slot < 0 || slot >= count) {
            throw new IndexOutOfBoundsException("slot " + slot + " out of range [0, " + count + ")");
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("store is closed");
        }
    }

    /** Frees every block. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        while (groupCount > 0) {
            NativeMemory.free(groups[--groupCount]);
            groups[groupCount] = null;
        }
        if (residual != null) {
            NativeMemory.free(residual);
            residual = null;
        }
        count = 0;
    }
}
