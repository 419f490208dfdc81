package io.kvcache4j.quantization;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.internal.vectorization.ConversionSupport;
import io.kvcache4j.internal.vectorization.VectorizationProvider;
import io.kvcache4j.store.NativeMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * KIVI storage of the keys and values of one (layer, KV head), after Liu et al., "KIVI: A
 * Tuning-Free Asymmetric 2bit Quantization for KV Cache", ICML 2024: keys quantized <em>per
 * channel</em> over groups of {@code G} tokens, values <em>per token</em> over groups of channels,
 * both asymmetric min/max at 2 or 4 bits, and the newest tokens kept in f16 (the residual).
 *
 * <p><b>Quantizer.</b> For a set of elements with minimum {@code z} and maximum {@code M}: scale
 * {@code s = (M − z)/(2^b − 1)}, code {@code c = clamp(rint((x − z)/s), 0, 2^b − 1)} (0 when {@code
 * s = 0}), reproduced as {@code s·c + z}, within {@code s/2} of {@code x}. Keys: one {@code (s, z)}
 * per channel and group of {@code G} aligned tokens; values: one per token and group of {@link
 * KiviConfig#valueGroupChannels()} channels. Scales and zero points are stored in the configuration's
 * {@link KiviConfig#scaleType()}: f32 as computed, or f16 as KIVI's code keeps them. In f16 the zero
 * point {@code z} is exact (it is an f16 input) and the scale is rounded <em>up</em> to the next f16
 * value before the codes are computed against it, so the codes never clip and the error bound
 * {@code s/2} holds for the stored scale.
 *
 * <p><b>Residual.</b> Appended tokens are rounded to f16 and kept exactly as such while they are
 * among the newest: when the residual reaches {@code R + G} tokens its oldest {@code G} form a
 * complete group and are quantized, so the newest {@code R} tokens (all of them, below {@code R})
 * are always f16 and the residual holds {@code R .. R+G−1} tokens once the store has more than
 * {@code R}. (KIVI's code quantizes keys {@code R} at a time and values one token at a time; here
 * keys and values leave the residual together, in whole groups, because they share one slot
 * numbering and the store's eviction granularity is {@code G}.)
 *
 * <p><b>Slots and compaction.</b> Slots {@code [0, Q)} are quantized groups ({@code Q} a multiple of
 * {@code G}), slots {@code [Q, count)} the residual, in append order. The store declares granularity
 * {@code G}, so the cache removes only whole complete aligned groups and keeps append order: a
 * surviving quantized group moves whole to a lower group position (a block copy), residual rows move
 * down, and the quantized prefix simply shrinks by the quantized groups removed. Groups are never
 * re-quantized; a residual group that was evicted is dropped with its f16 rows.
 *
 * <p><b>Memory.</b> Quantized groups live in off-heap pages from {@link NativeMemory} of {@code
 * max(1, pageTokens / G)} groups. One group is {@code [key scales: d][key zeros: d][value scales: G ×
 * d/Gv][value zeros: G × d/Gv][key codes][value codes]}, scales and zero points of {@link
 * KiviConfig#scaleBytes()} bytes each: key codes in sub-blocks
 * of 16 tokens, dimension-major (one 16-byte code unit per {@code 8/b} channels, see {@link
 * CodecKernel}), value rows in whole code units. The residual is one off-heap block of f16 rows
 * {@code [keys: cap × d][values: cap × d]} grown by doubling up to {@code R + G} rows, and freed or
 * halved when a compaction or a group leaving for the codes leaves it a quarter full or less. {@link #bytesHeld()} is the exact sum of the blocks held.
 *
 * <p><b>Attention</b> runs on the codes (see {@link PackedHeadStore}): for a key group, {@code q·k̂ =
 * Σ_c (q_c s_c)·code_c + Σ_c q_c z_c}, the query folded once per group and head; for values, {@code
 * Σ_j p_j(s_j·code_j + z_j) = Σ_j (p_j s_j)·code_j + Σ_j p_j z_j} per channel group. Residual rows
 * are scored and weighted as exact f16 values.
 *
 * <p>Ownership: the store owns its blocks and frees them in {@link #close()}. Driven by one thread at
 * a time, except that attention passes over disjoint chunks may run concurrently.
 */
public final class KiviHeadStore extends PackedHeadStore {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ConversionSupport CONVERSION =
            VectorizationProvider.getInstance().conversion();

    private final KiviConfig config;
    private final KvDType scaleType;
    private final boolean halfScales;
    private final int bits;
    private final int planes;
    private final int levels;
    private final int groupTokens;
    private final int residualTokens;
    private final int valueGroupChannels;
    private final int keyUnits;
    private final int subBlocks;
    private final long keySubBytes;
    private final int valueUnits;
    private final int valueRowBytes;
    private final long kZeroOffset;
    private final long vScaleOffset;
    private final long vZeroOffset;
    private final long kCodesOffset;
    private final long vCodesOffset;
    private final long groupBytes;
    private final int groupsPerPage;
    private final long pageBytes;
    private final long rowBytes;

    private MemorySegment[] pages = new MemorySegment[4];
    private int pageCount;
    /** Quantized groups: slots {@code [0, quantizedGroups·G)}. */
    private int quantizedGroups;

    private MemorySegment residual;
    private int residualCapacity;
    private int count;
    private final float[] groupKeys;
    private final float[] groupValues;

    /** Creates an empty store; {@code config} is checked against {@code headDim}. */
    public KiviHeadStore(KiviConfig config, int headDim, int pageTokens, CodecKernel kernel) {
        super(
                checked(config, headDim),
                valueUnits(config, headDim) * 16 * config.codesPerByte(),
                config.valueGroupChannels(),
                true,
                kernel);
        Int8Config.checkPageTokens(pageTokens);
        this.config = config;
        this.scaleType = config.scaleType();
        this.halfScales = scaleType == KvDType.F16;
        this.bits = config.bits();
        this.planes = config.codesPerByte();
        this.levels = (1 << bits) - 1;
        this.groupTokens = config.groupTokens();
        this.residualTokens = config.residualTokens();
        this.valueGroupChannels = config.valueGroupChannels();
        this.keyUnits = (headDim + planes - 1) / planes;
        this.subBlocks = (groupTokens + BLOCK - 1) / BLOCK;
        this.keySubBytes = 16L * keyUnits;
        this.valueUnits = valueUnits(config, headDim);
        this.valueRowBytes = 16 * valueUnits;
        long d = headDim;
        long perToken = (long) groupTokens * valueGroups;
        long mb = config.scaleBytes();
        this.kZeroOffset = mb * d;
        this.vScaleOffset = 2 * mb * d;
        this.vZeroOffset = vScaleOffset + mb * perToken;
        this.kCodesOffset = vZeroOffset + mb * perToken;
        this.vCodesOffset = kCodesOffset + subBlocks * keySubBytes;
        this.groupBytes = vCodesOffset + (long) groupTokens * valueRowBytes;
        this.groupsPerPage = Math.max(1, pageTokens / groupTokens);
        long raw = groupBytes * groupsPerPage;
        this.pageBytes = (raw + NativeMemory.ALIGNMENT - 1) & -NativeMemory.ALIGNMENT;
        this.rowBytes = 2L * headDim;
        this.groupKeys = new float[groupTokens * headDim];
        this.groupValues = new float[groupTokens * headDim];
    }

    private static int checked(KiviConfig config, int headDim) {
        config.check(headDim);
        return headDim;
    }

    private static int valueUnits(KiviConfig config, int headDim) {
        int perUnit = 16 * config.codesPerByte();
        return (headDim + perUnit - 1) / perUnit;
    }

    public KiviConfig config() {
        return config;
    }

    /** Slots held as quantized groups (the rest are f16 residual rows). */
    public int quantizedTokens() {
        return quantizedGroups * groupTokens;
    }

    /** Bytes of one quantized group as laid out in a page (codes, scales and zero points). */
    public long groupBytes() {
        return groupBytes;
    }

    /** Bytes of one page block as allocated. */
    public long pageBytes() {
        return pageBytes;
    }

    /** Rows the residual block has room for (0 when it is not allocated). */
    public int residualCapacity() {
        return residualCapacity;
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public int granularity() {
        return groupTokens;
    }

    /** The largest f16 value: appended tokens are rounded to f16 first. */
    @Override
    public float maxMagnitude() {
        return KvDType.F16.maxFinite();
    }

    @Override
    public long bytesHeld() {
        return pageCount * pageBytes + (residual == null ? 0 : residual.byteSize());
    }

    /**
     * Copies the bytes of quantized group {@code group} ({@link #groupBytes()} of them, in the layout
     * of the class comment) to {@code dst} at {@code offset}: with f32 scales, the layout a device
     * kernel reads (the {@code cuda} module's int4 store uploads groups this way).
     *
     * @throws IndexOutOfBoundsException unless {@code 0 <= group < quantizedTokens() / G}
     */
    public void copyGroup(int group, MemorySegment dst, long offset) {
        ensureOpen();
        java.util.Objects.checkIndex(group, quantizedGroups);
        MemorySegment.copy(page(group), groupOffset(group), dst, offset, groupBytes);
    }

    private MemorySegment page(int group) {
        return pages[group / groupsPerPage];
    }

    private long groupOffset(int group) {
        return (group % groupsPerPage) * groupBytes;
    }

    private long residualKey(int row) {
        return row * rowBytes;
    }

    private long residualValue(int row) {
        return (residualCapacity + (long) row) * rowBytes;
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        ensureOpen();
        for (int t = 0; t < tokens; t++) {
            int row = count - quantizedTokens();
            ensureResidual(row + 1);
            CONVERSION.encode(keys, keysOffset + t * rowStride, residual, residualKey(row), KvDType.F16, headDim);
            CONVERSION.encode(values, valuesOffset + t * rowStride, residual, residualValue(row), KvDType.F16, headDim);
            count++;
            if (count - quantizedTokens() >= residualTokens + groupTokens) {
                quantizeOldestResidualGroup();
            }
        }
    }

    private void ensureResidual(int rows) {
        if (rows <= residualCapacity) {
            return;
        }
        int max = residualTokens + groupTokens;
        int cap = Math.min(max, Math.max(BLOCK, residualCapacity * 2));
        resizeResidual(Math.max(cap, rows));
    }

    private void resizeResidual(int capacity) {
        int rows = count - quantizedTokens();
        MemorySegment old = residual;
        int oldCapacity = residualCapacity;
        residual = capacity == 0 ? null : NativeMemory.allocate(2 * capacity * rowBytes);
        residualCapacity = capacity;
        if (old != null) {
            if (rows > 0) {
                MemorySegment.copy(old, 0, residual, 0, rows * rowBytes);
                MemorySegment.copy(old, oldCapacity * rowBytes, residual, residualValue(0), rows * rowBytes);
            }
            NativeMemory.free(old);
        }
    }

    /** Quantizes residual rows {@code [0, G)} into the next group and moves the other rows down. */
    private void quantizeOldestResidualGroup() {
        final int g = groupTokens;
        final int d = headDim;
        int group = quantizedGroups;
        if (group / groupsPerPage == pageCount) {
            if (pageCount == pages.length) {
                pages = Arrays.copyOf(pages, pages.length * 2);
            }
            pages[pageCount++] = NativeMemory.allocate(pageBytes);
        }
        MemorySegment p = page(group);
        long base = groupOffset(group);
        p.asSlice(base, groupBytes).fill((byte) 0);
        for (int t = 0; t < g; t++) {
            CONVERSION.decode(residual, residualKey(t), KvDType.F16, groupKeys, t * d, d);
            CONVERSION.decode(residual, residualValue(t), KvDType.F16, groupValues, t * d, d);
        }
        // keys: per channel over the G tokens
        for (int i = 0; i < d; i++) {
            float mn = Float.POSITIVE_INFINITY;
            float mx = Float.NEGATIVE_INFINITY;
            for (int t = 0; t < g; t++) {
                float x = groupKeys[t * d + i];
                mn = Math.min(mn, x);
                mx = Math.max(mx, x);
            }
            float s = storedScale((mx - mn) / levels);
            putScale(p, base + scaleOffset(i), s);
            putScale(p, base + kZeroOffset + scaleOffset(i), mn);
            for (int t = 0; t < g; t++) {
                int c = code(groupKeys[t * d + i], s, mn);
                long at = base + kCodesOffset + (t / BLOCK) * keySubBytes + 16L * (i / planes) + t % BLOCK;
                orCode(p, at, c << (bits * (i % planes)));
            }
        }
        // values: per token over groups of channels
        int groups = valueGroups;
        for (int t = 0; t < g; t++) {
            for (int q = 0; q < groups; q++) {
                int c0 = q * valueGroupChannels;
                int c1 = c0 + valueGroupChannels;
                float mn = Float.POSITIVE_INFINITY;
                float mx = Float.NEGATIVE_INFINITY;
                for (int c = c0; c < c1; c++) {
                    mn = Math.min(mn, groupValues[t * d + c]);
                    mx = Math.max(mx, groupValues[t * d + c]);
                }
                float s = storedScale((mx - mn) / levels);
                putScale(p, base + vScaleOffset + scaleOffset(t * groups + q), s);
                putScale(p, base + vZeroOffset + scaleOffset(t * groups + q), mn);
                for (int c = c0; c < c1; c++) {
                    int code = code(groupValues[t * d + c], s, mn);
                    orCode(p, valueCodeByte(base, t, c), code << (bits * ((c % (16 * planes)) / 16)));
                }
            }
        }
        quantizedGroups++;
        int rest = count - quantizedTokens();
        if (rest > 0) {
            MemorySegment.copy(residual, residualKey(g), residual, residualKey(0), rest * rowBytes);
            MemorySegment.copy(residual, residualValue(g), residual, residualValue(0), rest * rowBytes);
        }
        shrinkResidual();
    }

    /**
     * The scale as stored: {@code s} itself in f32; in f16 the smallest f16 value {@code >= s}, so that
     * codes computed against it never exceed the top level.
     */
    private float storedScale(float s) {
        if (!halfScales) {
            return s;
        }
        short h = Float.floatToFloat16(s);
        if (Float.float16ToFloat(h) < s) {
            h++;
        }
        return Float.float16ToFloat(h);
    }

    /** Stores a scale or zero point (already representable in the scale type). */
    private void putScale(MemorySegment p, long at, float x) {
        if (halfScales) {
            p.set(I16, at, Float.floatToFloat16(x));
        } else {
            p.set(F32, at, x);
        }
    }

    private float scale(MemorySegment p, long at) {
        return halfScales ? Float.float16ToFloat(p.get(I16, at)) : p.get(F32, at);
    }

    private long scaleOffset(int index) {
        return halfScales ? 2L * index : 4L * index;
    }

    private long valueCodeByte(long base, int t, int c) {
        return base + vCodesOffset + (long) t * valueRowBytes + 16L * (c / (16 * planes)) + c % 16;
    }

    private static void orCode(MemorySegment p, long at, int bitsValue) {
        p.set(ValueLayout.JAVA_BYTE, at, (byte) (p.get(ValueLayout.JAVA_BYTE, at) | bitsValue));
    }

    /** {@code clamp(rint((x − z)/s), 0, levels)}; 0 when {@code s == 0}. */
    private int code(float x, float s, float z) {
        if (s == 0f) {
            return 0;
        }
        float c = (float) Math.rint((x - z) / s);
        return (int) Math.max(0f, Math.min(levels, c));
    }

    @Override
    int segmentStart(int slot) {
        int q = quantizedTokens();
        if (slot < q) {
            int t = slot % groupTokens;
            return slot - t + t / BLOCK * BLOCK;
        }
        return q + (slot - q) / BLOCK * BLOCK;
    }

    @Override
    int segmentLength(int start) {
        int q = quantizedTokens();
        if (start < q) {
            return Math.min(BLOCK, groupTokens - start % groupTokens);
        }
        return Math.min(BLOCK, count - start);
    }

    @Override
    void scoreSegment(GroupAttention st, Scratch s, int start, int len, float[] out) {
        final int d = headDim;
        final int heads = st.group();
        float[] q = st.queries();
        if (start < quantizedTokens()) {
            int group = start / groupTokens;
            MemorySegment p = page(group);
            long base = groupOffset(group);
            if (s.foldedFor != group) {
                fold(q, heads, p, base, s.folded, s.bias);
                s.foldedFor = group;
            }
            int sub = start % groupTokens / BLOCK;
            kernel.scoresPacked(p, base + kCodesOffset + sub * keySubBytes, bits, s.folded, d, s.bias, heads, d, out);
            return;
        }
        int row0 = start - quantizedTokens();
        for (int j = 0; j < BLOCK; j++) {
            if (j < len) {
                CONVERSION.decode(residual, residualKey(row0 + j), KvDType.F16, s.row, 0, d);
                for (int i = 0; i < d; i++) {
                    s.keys[i * BLOCK + j] = s.row[i];
                }
            } else {
                for (int i = 0; i < d; i++) {
                    s.keys[i * BLOCK + j] = 0f;
                }
            }
        }
        for (int h = 0; h < heads; h++) {
            kernel.scores(q, h * d, d, s.keys, 0f, out, h * BLOCK);
        }
    }

    /**
     * Folds the key scales and zero points of the group at {@code base} into the queries: {@code
     * folded[h·d + i] = q[h·d + i]·s_i} and {@code bias[h]} the chain {@code b ← fma(q[h·d + i], z_i,
     * b)} over {@code i = 0 .. d-1} from 0; four heads at a time, so their chains overlap.
     */
    private void fold(float[] q, int heads, MemorySegment p, long base, float[] folded, float[] bias) {
        final int d = headDim;
        for (int h0 = 0; h0 < heads; h0 += 4) {
            int n = Math.min(4, heads - h0);
            int r0 = h0 * d;
            int r1 = (h0 + Math.min(1, n - 1)) * d;
            int r2 = (h0 + Math.min(2, n - 1)) * d;
            int r3 = (h0 + Math.min(3, n - 1)) * d;
            float b0 = 0f;
            float b1 = 0f;
            float b2 = 0f;
            float b3 = 0f;
            for (int i = 0; i < d; i++) {
                float sc = scale(p, base + scaleOffset(i));
                float z = scale(p, base + kZeroOffset + scaleOffset(i));
                folded[r0 + i] = q[r0 + i] * sc;
                folded[r1 + i] = q[r1 + i] * sc;
                folded[r2 + i] = q[r2 + i] * sc;
                folded[r3 + i] = q[r3 + i] * sc;
                b0 = Math.fma(q[r0 + i], z, b0);
                b1 = Math.fma(q[r1 + i], z, b1);
                b2 = Math.fma(q[r2 + i], z, b2);
                b3 = Math.fma(q[r3 + i], z, b3);
            }
            bias[h0] = b0;
            bias[h0 + Math.min(1, n - 1)] = b1;
            bias[h0 + Math.min(2, n - 1)] = b2;
            bias[h0 + Math.min(3, n - 1)] = b3;
        }
    }

    /** Runs of consecutive slots of one quantized group are unpacked in one call, their scales and zeros copied at once. */
    @Override
    void loadValues(int[] slots, int nb, float[] v, float[] scales, float[] zeros) {
        int qt = quantizedTokens();
        for (int j = 0; j < nb; ) {
            int slot = slots[j];
            if (slot >= qt) {
                loadValue(slot, v, j * valueStride, scales, zeros, j * valueGroups);
                j++;
                continue;
            }
            int t = slot % groupTokens;
            int run = 1;
            while (j + run < nb && slots[j + run] == slot + run && t + run < groupTokens) {
                run++;
            }
            int group = slot / groupTokens;
            MemorySegment p = page(group);
            long base = groupOffset(group);
            kernel.unpack(
                    p, base + vCodesOffset + (long) t * valueRowBytes, bits, run * valueUnits, v, j * valueStride);
            long at = scaleOffset(t * valueGroups);
            CONVERSION.decode(p, base + vScaleOffset + at, scaleType, scales, j * valueGroups, run * valueGroups);
            CONVERSION.decode(p, base + vZeroOffset + at, scaleType, zeros, j * valueGroups, run * valueGroups);
            j += run;
        }
    }

    @Override
    void loadValue(int slot, float[] v, int vOff, float[] scales, float[] zeros, int sOff) {
        int qt = quantizedTokens();
        if (slot < qt) {
            int group = slot / groupTokens;
            int t = slot % groupTokens;
            MemorySegment p = page(group);
            long base = groupOffset(group);
            kernel.unpack(p, base + vCodesOffset + (long) t * valueRowBytes, bits, valueUnits, v, vOff);
            long at = scaleOffset(t * valueGroups);
            CONVERSION.decode(p, base + vScaleOffset + at, scaleType, scales, sOff, valueGroups);
            CONVERSION.decode(p, base + vZeroOffset + at, scaleType, zeros, sOff, valueGroups);
            return;
        }
        CONVERSION.decode(residual, residualValue(slot - qt), KvDType.F16, v, vOff, headDim);
        for (int q = 0; q < valueGroups; q++) {
            scales[sOff + q] = 1f;
            zeros[sOff + q] = 0f;
        }
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        checkSlot(slot);
        int qt = quantizedTokens();
        if (slot >= qt) {
            CONVERSION.decode(residual, residualKey(slot - qt), KvDType.F16, dst, offset, headDim);
            return;
        }
        int group = slot / groupTokens;
        int t = slot % groupTokens;
        MemorySegment p = page(group);
        long base = groupOffset(group);
        for (int i = 0; i < headDim; i++) {
            long at = base + kCodesOffset + (t / BLOCK) * keySubBytes + 16L * (i / planes) + t % BLOCK;
            int c = (p.get(ValueLayout.JAVA_BYTE, at) >>> (bits * (i % planes))) & levels;
            dst[offset + i] = scale(p, base + scaleOffset(i)) * c + scale(p, base + kZeroOffset + scaleOffset(i));
        }
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        checkSlot(slot);
        int qt = quantizedTokens();
        if (slot >= qt) {
            CONVERSION.decode(residual, residualValue(slot - qt), KvDType.F16, dst, offset, headDim);
            return;
        }
        int group = slot / groupTokens;
        int t = slot % groupTokens;
        MemorySegment p = page(group);
        long base = groupOffset(group);
        for (int c = 0; c < headDim; c++) {
            int q = c / valueGroupChannels;
            int code = (p.get(ValueLayout.JAVA_BYTE, valueCodeByte(base, t, c)) >>> (bits * ((c % (16 * planes)) / 16)))
                    & levels;
            dst[offset + c] = scale(p, base + vScaleOffset + scaleOffset(t * valueGroups + q)) * code
                    + scale(p, base + vZeroOffset + scaleOffset(t * valueGroups + q));
        }
    }

    /**
     * Compacts under the contract of granularity {@code G} (see the class comment); a call that breaks
     * it (a partial group removed, a quantized group landing off a group boundary, order not kept)
     * throws {@link IllegalArgumentException} before anything changes.
     */
    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        ensureOpen();
        final int g = groupTokens;
        if (from < 0 || moved < 0 || from + moved > newCount || newCount > count) {
            throw new IllegalArgumentException("compact(from " + from + ", moved " + moved + ", newCount " + newCount
                    + ") out of range for " + count + " slots");
        }
        if (from % g != 0 || (count - newCount) % g != 0) {
            throw new IllegalArgumentException("compact(from " + from + ", newCount " + newCount + ") of " + count
                    + " slots must start at a group boundary and remove whole groups of " + g);
        }
        final int qt = quantizedTokens();
        int newQ = Math.min(from, qt) + Math.max(0, Math.min(newCount, qt) - (from + moved));
        for (int j = 0; j < moved; j++) {
            int src = sources[j];
            if (src < from + j || (j > 0 && src <= sources[j - 1]) || src >= count) {
                throw new IllegalArgumentException(
                        "compact: source " + src + " for slot " + (from + j) + " breaks the append order");
            }
            if ((src % g == 0) != ((from + j) % g == 0)) {
                throw new IllegalArgumentException("compact: source " + src + " moves to slot " + (from + j)
                        + ", off its group boundary (groups of " + g + ")");
            }
            if (src < qt) {
                newQ++;
            }
        }
        if (newQ % g != 0) {
            throw new IllegalArgumentException(
                    "compact: " + newQ + " quantized slots survive, not whole groups of " + g);
        }
        if (newQ != qt && from + moved < newCount) {
            throw new IllegalArgumentException("compact: slots [" + (from + moved) + ", " + newCount
                    + ") stay in place although quantized slots before them were removed");
        }
        for (int j = 0; j < moved; j++) {
            int src = sources[j];
            int dst = from + j;
            if (src < qt ? dst >= newQ : dst - newQ > src - qt) {
                throw new IllegalArgumentException(
                        "compact: source " + src + " for slot " + (from + j) + " breaks the append order");
            }
        }
        for (int j = 0; j < moved; j++) {
            int src = sources[j];
            int dst = from + j;
            if (src < qt) {
                if (dst % g == 0 && src != dst) {
                    copyGroup(src / g, dst / g);
                }
            } else if (src - qt != dst - newQ) {
                copyResidualRow(src - qt, dst - newQ);
            }
        }
        count = newCount;
        quantizedGroups = newQ / g;
        int needed = (quantizedGroups + groupsPerPage - 1) / groupsPerPage;
        while (pageCount > needed) {
            NativeMemory.free(pages[--pageCount]);
            pages[pageCount] = null;
        }
        shrinkResidual();
    }

    /**
     * Frees the residual block when it holds no row, and halves its room (to twice its rows, at least
     * {@link GroupAttention#BLOCK}) when its rows fill a quarter or less, so that the bytes held follow
     * the rows held: after a compaction, and after a group leaves for the codes (with a short {@code
     * R} most rows leave with it).
     */
    private void shrinkResidual() {
        int rows = count - quantizedTokens();
        if (rows == 0 && residual != null) {
            resizeResidual(0);
        } else if (rows * 4 <= residualCapacity && residualCapacity > BLOCK) {
            resizeResidual(Math.max(BLOCK, rows * 2));
        }
    }

    private void copyGroup(int from, int to) {
        MemorySegment.copy(page(from), groupOffset(from), page(to), groupOffset(to), groupBytes);
    }

    private void copyResidualRow(int from, int to) {
        MemorySegment.copy(residual, residualKey(from), residual, residualKey(to), rowBytes);
        MemorySegment.copy(residual, residualValue(from), residual, residualValue(to), rowBytes);
    }

    /** Frees every block. Idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        while (pageCount > 0) {
            NativeMemory.free(pages[--pageCount]);
            pages[pageCount] = null;
        }
        if (residual != null) {
            NativeMemory.free(residual);
            residual = null;
            residualCapacity = 0;
        }
        count = 0;
    }
}
