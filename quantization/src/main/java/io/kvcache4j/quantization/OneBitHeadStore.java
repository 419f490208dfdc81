package io.kvcache4j.quantization;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.attention.ValueChunks;
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
 * [keys: d × G, dimension-major][values: G × d, in column chunks]}, binary16) and is scored by kv-api's attention
 * kernel.
 *
 * <p><b>Memory.</b> One off-heap block per complete group, {@link #groupBytes} bytes: value codes
 * ({@code G/8} octets of tokens, {@code d} bytes each: bit {@code i} of byte {@code c} of octet
 * {@code n} is channel {@code c} of token {@code 8n + i}, the layout {@link
 * OneBitKernel#accumulateValues} reads), key codes ({@code G/16} blocks of {@code ⌈d/8⌉} octets of 16 bytes: byte {@code j} of
 * octet {@code o} of block {@code b} holds channels {@code 8o .. 8o+7} of token {@code 16b + j}, the
 * layout {@link OneBitKernel#keyLogits} scores by table lookups), then the binary16
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
    /** Largest binary16 value: the residual rows are binary16. */
    private static final float MAX_F16 = 65504f;

    private final OneBitConfig config;
    private final int d;
    private final int groupTokens;
    private final int octets;
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
        this.octets = OneBitKernel.octets(headDim);
        this.keyCodesOffset = (long) groupTokens * headDim / 8;
        this.levelsOffset = keyCodesOffset + (long) groupTokens * octets;
        this.groupBytes = groupBytes(headDim, groupTokens);
        this.residualBytes = residualBytes(headDim, groupTokens);
        this.residualRowBytes = 2L * headDim;
        this.residualValuesOffset = 2L * headDim * groupTokens;
    }

    /**
     * Bytes of the block of one complete group: {@code G·d/8} (value codes) {@code + G·⌈d/8⌉}
     * (key codes) {@code + 8·d} (four binary16 levels per channel), rounded up to {@link
     * NativeMemory#ALIGNMENT}.
     */
    public static long groupBytes(int headDim, int groupTokens) {
        OneBitConfig.checkGroupTokens(groupTokens);
        long raw = (long) groupTokens * headDim / 8 + (long) groupTokens * OneBitKernel.octets(headDim) + 8L * headDim;
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
            ValueChunks.encode(
                    conversion, values, valuesOffset + src, residual, residualValuesOffset, KvDType.F16, d, row);
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
        // keys dimension-major (channel c at [c·G, (c+1)·G)), values in column chunks read back token-major
        conversion.decode(residual, 0, KvDType.F16, groupKeys, 0, g * d);
        for (int t = 0; t < g; t++) {
            ValueChunks.decode(conversion, residual, residualValuesOffset, KvDType.F16, d, t, groupValues, t * d);
        }
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
            for (int t = 0; t < g; t++) {
                if (groupKeys[c * g + t] >= mid) {
                    long at = keyCodeByte(t, c);
                    block.set(ValueLayout.JAVA_BYTE, at, (byte) (block.get(ValueLayout.JAVA_BYTE, at) | 1 << (c & 7)));
                }
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
            for (int t = 0; t < g; t++) {
                if (channel[t] >= mid) {
                    long at = valueCodeByte(t, c);
                    block.set(ValueLayout.JAVA_BYTE, at, (byte) (block.get(ValueLayout.JAVA_BYTE, at) | 1 << (t & 7)));
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

    /** Offset in a group block of the value code byte holding channel {@code c} of the group's token {@code t}. */
    private long valueCodeByte(int t, int c) {
        return (long) (t >>> 3) * d + c;
    }

    /** Offset in a group block of the key code byte holding channel {@code c} of the group's token {@code t}. */
    private long keyCodeByte(int t, int c) {
        return keyCodesOffset + 16L * ((long) (t / BLOCK) * octets + (c >>> 3)) + (t % BLOCK);
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
        Pass p = Pass.get(heads, d, 2 * residualRowBytes * BLOCK);
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
                        state, residual, 0, groupTokens, residualValuesOffset, KvDType.F16, a, b - a, ordinal);
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
        Pass p = Pass.get(heads, d, 2 * residualRowBytes * BLOCK);
        int packed = groupCount * groupTokens;
        int end = Math.min(slots, packed);
        for (int chunk = 0; chunk < end; chunk += BLOCK) {
            int nb = Math.min(BLOCK, end - chunk);
            if (nb == BLOCK) {
                blockLogits(p, state, chunk, out, chunk, outStride);
            } else {
                blockLogits(p, state, chunk, p.logits, 0, BLOCK);
                for (int h = 0; h < heads; h++) {
                    System.arraycopy(p.logits, h * BLOCK, out, h * outStride + chunk, nb);
                }
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
        MemorySegment block = blockLogits(p, state, chunk, p.logits, 0, BLOCK);
        int group = chunk / groupTokens;
        if (group != p.valueGroup) {
            loadValueLevels(p, block);
            p.valueGroup = group;
        }
        int first = chunk % groupTokens;
        int heads = state.group();
        int nb = Integer.bitCount(mask);
        if (mask != 0xFFFF) {
            // the selected keys' logits, in bit order, to the front of each head's row
            for (int h = 0; h < heads; h++) {
                int j = h * BLOCK;
                for (int m = mask; m != 0; m &= m - 1) {
                    p.logits[j++] = p.logits[h * BLOCK + Integer.numberOfTrailingZeros(m)];
                }
            }
        }
        state.pushLogits(p.logits, nb, ordinal);
        if (mask != 0xFFFF) {
            // the weights back to their keys' positions, +0 for the keys not attended
            for (int h = 0; h < heads; h++) {
                int row = h * BLOCK;
                int j = nb;
                for (int pos = BLOCK - 1; pos >= 0; pos--) {
                    p.logits[row + pos] = (mask >>> pos & 1) != 0 ? p.logits[row + --j] : 0f;
                }
            }
        }
        kernel.accumulateValues(
                p.logits,
                block,
                2L * d * (first / BLOCK),
                p.valueLo,
                p.valueScale,
                d,
                heads,
                p.valueTables,
                state.accumulator());
    }

    /**
     * The logits of the 16 keys {@code chunk .. chunk + 15} of a packed group ({@code chunk} a multiple
     * of {@link GroupAttention#BLOCK}), head {@code h}'s at {@code out[outOffset + h·outStride ..]} (the
     * group's levels loaded and its tables built first when the pass has not yet); returns the group's
     * block.
     */
    private MemorySegment blockLogits(
            Pass p, GroupAttention state, int chunk, float[] out, int outOffset, int outStride) {
        int group = chunk / groupTokens;
        int first = chunk - group * groupTokens;
        MemorySegment block = groups[group];
        if (group != p.loadedGroup) {
            loadGroup(p, state, block);
            p.loadedGroup = group;
        }
        long keyBase = keyCodesOffset + 16L * (first / BLOCK) * octets;
        kernel.keyLogits(block, keyBase, d, p.tables, p.beta, state.group(), out, outOffset, outStride);
        return block;
    }

    /**
     * Reads a group's binary16 levels and folds the key levels into the pass's queries ({@link
     * OneBitKernel#foldKeys}: {@code β} and the quad tables of every head).
     */
    private void loadGroup(Pass p, GroupAttention state, MemorySegment block) {
        float[] lv = p.levels;
        conversion.decode(block, levelsOffset, KvDType.F16, lv, 0, 2 * d);
        for (int c = 0; c < d; c++) {
            p.keyScale[c] = lv[d + c] - lv[c];
        }
        kernel.foldKeys(state.queries(), lv, p.keyScale, d, state.group(), p.beta, p.tables);
    }

    /** Reads a group's value levels into the pass ({@code lo} and {@code hi − lo} per channel). */
    private void loadValueLevels(Pass p, MemorySegment block) {
        float[] lv = p.levels;
        conversion.decode(block, levelsOffset + 4L * d, KvDType.F16, lv, 2 * d, 2 * d);
        for (int c = 0; c < d; c++) {
            p.valueScale[c] = lv[3 * d + c] - lv[2 * d + c];
        }
        System.arraycopy(lv, 2 * d, p.valueLo, 0, d);
    }

    /** Copies residual row {@code row} into position {@code n} of the one-block gather page. */
    private void gatherRow(Pass p, int row, int n) {
        long dimStride = 2L * groupTokens;
        for (int i = 0; i < d; i++) {
            MemorySegment.copy(residual, i * dimStride + 2L * row, p.gather, 2L * ((long) i * BLOCK + n), 2);
        }
        ValueChunks.copy(residual, residualValuesOffset, row, p.gather, residualRowBytes * BLOCK, n, d, 2);
    }

    private void scanGathered(Pass p, GroupAttention state, int n, int ordinal) {
        residualKernel.scan(state, p.gather, 0, BLOCK, residualRowBytes * BLOCK, KvDType.F16, 0, n, ordinal);
    }

    /**
     * The scratch of one attention or scoring pass, one per thread and grown on demand (never shrunk),
     * so that passes over distinct chunks of one store run concurrently: the value tables of a block, a
     * group's levels, the key tables and {@code β} of the folded queries and the gather page of
     * residual rows.
     */
    private static final class Pass {
        private static final ThreadLocal<Pass> LOCAL = ThreadLocal.withInitial(Pass::new);

        float[] valueTables = new float[0];
        float[] keyScale = new float[0];
        float[] valueLo = new float[0];
        float[] valueScale = new float[0];
        float[] levels = new float[0];
        float[] tables = new float[0];
        float[] beta = new float[0];
        float[] logits = new float[0];
        /** The group whose key levels are loaded and folded in this pass, or -1. */
        int loadedGroup;
        /** The group whose value levels are loaded in this pass, or -1. */
        int valueGroup;

        MemorySegment gather = MemorySegment.ofArray(new long[0]);

        /** This thread's scratch for {@code heads} query heads, rows of {@code d}, a new pass begun. */
        static Pass get(int heads, int d, long gatherBytes) {
            Pass p = LOCAL.get();
            if (p.keyScale.length < d) {
                p.levels = new float[4 * d];
                p.keyScale = new float[d];
                p.valueLo = new float[d];
                p.valueScale = new float[d];
            }
            if (p.valueTables.length < OneBitKernel.valueTableFloats(heads)) {
                p.valueTables = new float[OneBitKernel.valueTableFloats(heads)];
            }
            if (p.logits.length < heads * BLOCK) {
                p.logits = new float[heads * BLOCK];
            }
            if (p.tables.length < OneBitKernel.tableFloats(d, heads)) {
                p.tables = new float[OneBitKernel.tableFloats(d, heads)];
            }
            if (p.beta.length < heads) {
                p.beta = new float[heads];
            }
            if (p.gather.byteSize() < gatherBytes) {
                p.gather = MemorySegment.ofArray(new long[(int) ((gatherBytes + 7) / 8)]);
            }
            p.loadedGroup = -1;
            p.valueGroup = -1;
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
        for (int c = 0; c < d; c++) {
            boolean set = ((block.get(ValueLayout.JAVA_BYTE, keyCodeByte(t, c)) >>> (c & 7)) & 1) != 0;
            dst[offset + c] = Float.float16ToFloat(block.get(I16, levelsOffset + 2L * ((set ? d : 0) + c)));
        }
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        checkSlot(slot);
        int packed = groupCount * groupTokens;
        if (slot >= packed) {
            ValueChunks.decode(conversion, residual, residualValuesOffset, KvDType.F16, d, slot - packed, dst, offset);
            return;
        }
        MemorySegment block = groups[slot / groupTokens];
        int t = slot % groupTokens;
        for (int c = 0; c < d; c++) {
            boolean set = ((block.get(ValueLayout.JAVA_BYTE, valueCodeByte(t, c)) >>> (t & 7)) & 1) != 0;
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
