package io.kvcache4j.quantization;

import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.NativeMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Per-token symmetric int8 storage of the keys and values of one (layer, KV head): each key row and
 * each value row keeps one f32 scale {@code s = max|x| / 127} and 8-bit codes {@code c = rint(x / s)}
 * in {@code [−127, 127]}, reproduced as {@code s·c} (every element within {@code s/2} of the input).
 * Granularity 1: any slot can leave.
 *
 * <p><b>Memory.</b> Off-heap pages of {@code pageTokens} slots from {@link NativeMemory}, each a run
 * of 16-token blocks laid out as {@code [key scales: 16 f32][value scales: 16 f32][key codes: headDim
 * × 16][value codes: 16 × rowBytes]}, key codes dimension-major (one 16-byte code unit per channel,
 * see {@link CodecKernel}) and value rows padded to whole units of 16 bytes. Appending allocates a
 * page when the last is full; compaction frees every page past the new count. {@link #bytesHeld()}
 * is the sum of the page blocks held.
 *
 * <p><b>Attention.</b> Scores are {@code s_j·(q·c_j)}: the integer codes of a 16-key block are
 * unpacked once and scored for every query head, the key scale applied per key afterwards. Values:
 * {@code Σ_j p_j s_j c_j} with {@code p_j s_j} formed first (see {@link PackedHeadStore}).
 *
 * <p>Ownership: the store owns its pages and frees them in {@link #close()}. Driven by one thread
 * at a time, except that attention passes over disjoint chunks may run concurrently.
 */
public final class Int8HeadStore extends PackedHeadStore {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int BLOCK = CodecKernel.BLOCK;

    private final int pageTokens;
    private final int valueRowBytes;
    private final long keyCodesOffset;
    private final long valueCodesOffset;
    private final long blockBytes;
    private final long pageBytes;

    private MemorySegment[] pages = new MemorySegment[4];
    private int pageCount;
    private int count;

    /** Creates an empty store with pages of {@code pageTokens} (a multiple of 16) slots. */
    public Int8HeadStore(int headDim, int pageTokens, CodecKernel kernel) {
        super(checkHeadDim(headDim), roundUp(headDim, 16), headDim, false, kernel);
        Int8Config.checkPageTokens(pageTokens);
        this.pageTokens = pageTokens;
        this.valueRowBytes = roundUp(headDim, 16);
        this.keyCodesOffset = 2L * 4 * BLOCK;
        this.valueCodesOffset = keyCodesOffset + 16L * headDim;
        this.blockBytes = valueCodesOffset + (long) BLOCK * valueRowBytes;
        long raw = blockBytes * (pageTokens / BLOCK);
        this.pageBytes = (raw + NativeMemory.ALIGNMENT - 1) & -NativeMemory.ALIGNMENT;
    }

    private static int checkHeadDim(int headDim) {
        if (headDim <= 0) {
            throw new IllegalArgumentException("headDim must be >= 1, was " + headDim);
        }
        return headDim;
    }

    static int roundUp(int n, int m) {
        return (n + m - 1) / m * m;
    }

    /** Bytes of one page block as allocated. */
    public long pageBytes() {
        return pageBytes;
    }

    @Override
    public int count() {
        return count;
    }

    @Override
    public long bytesHeld() {
        return pageCount * pageBytes;
    }

    /** Offset of the 16-token block of {@code slot} in its page. */
    private long block(int slot) {
        return (slot % pageTokens) / BLOCK * blockBytes;
    }

    @Override
    public void append(float[] keys, int keysOffset, float[] values, int valuesOffset, int rowStride, int tokens) {
        ensureOpen();
        for (int t = 0; t < tokens; t++) {
            if (count / pageTokens == pageCount) {
                if (pageCount == pages.length) {
                    pages = Arrays.copyOf(pages, pages.length * 2);
                }
                pages[pageCount++] = NativeMemory.allocate(pageBytes);
            }
            MemorySegment p = pages[count / pageTokens];
            long b = block(count);
            int j = count % BLOCK;
            int ko = keysOffset + t * rowStride;
            int vo = valuesOffset + t * rowStride;
            float ks = scale(keys, ko, headDim);
            p.set(F32, b + 4L * j, ks);
            for (int i = 0; i < headDim; i++) {
                p.set(ValueLayout.JAVA_BYTE, b + keyCodesOffset + 16L * i + j, code(keys[ko + i], ks));
            }
            float vs = scale(values, vo, headDim);
            p.set(F32, b + 4L * (BLOCK + j), vs);
            long row = b + valueCodesOffset + (long) j * valueRowBytes;
            for (int i = 0; i < valueRowBytes; i++) {
                p.set(ValueLayout.JAVA_BYTE, row + i, i < headDim ? code(values[vo + i], vs) : 0);
            }
            count++;
        }
    }

    /** The symmetric scale of a row: {@code max|x| / 127} (0 for an all-zero row). */
    static float scale(float[] x, int off, int n) {
        float max = 0f;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, Math.abs(x[off + i]));
        }
        return max / 127f;
    }

    /** {@code rint(x / s)} clamped to {@code [−127, 127]}; 0 when {@code s == 0}. */
    static byte code(float x, float s) {
        if (s == 0f) {
            return 0;
        }
        float c = (float) Math.rint(x / s);
        return (byte) Math.max(-127f, Math.min(127f, c));
    }

    @Override
    int segmentStart(int slot) {
        return slot - slot % BLOCK;
    }

    @Override
    int segmentLength(int start) {
        return Math.min(BLOCK, count - start);
    }

    @Override
    void scoreSegment(GroupAttention st, Scratch s, int start, int len, float[] out) {
        MemorySegment p = pages[start / pageTokens];
        long b = block(start);
        int heads = st.group();
        Arrays.fill(s.bias, 0, heads, 0f);
        kernel.scoresPacked(p, b + keyCodesOffset, 8, st.queries(), headDim, s.bias, heads, headDim, out);
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < len; j++) {
                out[h * BLOCK + j] *= p.get(F32, b + 4L * j);
            }
        }
    }

    @Override
    void loadValue(int slot, float[] v, int vOff, float[] scales, float[] zeros, int sOff) {
        MemorySegment p = pages[slot / pageTokens];
        long b = block(slot);
        int j = slot % BLOCK;
        kernel.unpack(p, b + valueCodesOffset + (long) j * valueRowBytes, 8, valueRowBytes / 16, v, vOff);
        scales[sOff] = p.get(F32, b + 4L * (BLOCK + j));
    }

    @Override
    public void readKey(int slot, float[] dst, int offset) {
        checkSlot(slot);
        MemorySegment p = pages[slot / pageTokens];
        long b = block(slot);
        int j = slot % BLOCK;
        float s = p.get(F32, b + 4L * j);
        for (int i = 0; i < headDim; i++) {
            dst[offset + i] = s * p.get(ValueLayout.JAVA_BYTE, b + keyCodesOffset + 16L * i + j);
        }
    }

    @Override
    public void readValue(int slot, float[] dst, int offset) {
        checkSlot(slot);
        MemorySegment p = pages[slot / pageTokens];
        long b = block(slot);
        int j = slot % BLOCK;
        float s = p.get(F32, b + 4L * (BLOCK + j));
        long row = b + valueCodesOffset + (long) j * valueRowBytes;
        for (int i = 0; i < headDim; i++) {
            dst[offset + i] = s * p.get(ValueLayout.JAVA_BYTE, row + i);
        }
    }

    @Override
    public void compact(int from, int[] sources, int moved, int newCount) {
        ensureOpen();
        if (from < 0 || moved < 0 || from + moved > newCount || newCount > count) {
            throw new IllegalArgumentException("compact(from " + from + ", moved " + moved + ", newCount " + newCount
                    + ") out of range for " + count + " slots");
        }
        for (int j = 0; j < moved; j++) {
            int src = sources[j];
            int dst = from + j;
            if (src != dst) {
                copySlot(src, dst);
            }
        }
        count = newCount;
        int needed = (newCount + pageTokens - 1) / pageTokens;
        while (pageCount > needed) {
            NativeMemory.free(pages[--pageCount]);
            pages[pageCount] = null;
        }
    }

    private void copySlot(int from, int to) {
        MemorySegment sp = pages[from / pageTokens];
        MemorySegment dp = pages[to / pageTokens];
        long sb = block(from);
        long db = block(to);
        int sj = from % BLOCK;
        int dj = to % BLOCK;
        dp.set(F32, db + 4L * dj, sp.get(F32, sb + 4L * sj));
        dp.set(F32, db + 4L * (BLOCK + dj), sp.get(F32, sb + 4L * (BLOCK + sj)));
        for (int i = 0; i < headDim; i++) {
            dp.set(
                    ValueLayout.JAVA_BYTE,
                    db + keyCodesOffset + 16L * i + dj,
                    sp.get(ValueLayout.JAVA_BYTE, sb + keyCodesOffset + 16L * i + sj));
        }
        MemorySegment.copy(
                sp,
                sb + valueCodesOffset + (long) sj * valueRowBytes,
                dp,
                db + valueCodesOffset + (long) dj * valueRowBytes,
                valueRowBytes);
    }

    /** Frees every page. Idempotent. */
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
        count = 0;
    }
}
