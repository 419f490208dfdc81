package io.kvcache4j.attention;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Scratch and running state of one single-pass attention over the keys of one KV head, for the
 * {@code group} query heads that share it (grouped-query attention).
 *
 * <p>Use: {@link #begin} with the group's queries, one or more {@link AttentionKernel#scan} calls
 * over consecutive key/value blocks (each key and value byte is read once for the whole group),
 * then {@link #finish}. The state implements online softmax: a running maximum {@code m}, a running
 * sum {@code l} of {@code exp(s − m)} and an unnormalised output accumulator, rescaled whenever the
 * maximum grows.
 *
 * <p>When {@link #recordLogits(int)} was called before the pass, every key's softmax weight {@code
 * exp(s − m_b)} is also kept, with the running maximum {@code m_b} of each head after the block
 * {@code b} it came in, so that {@link AttentionKernel#mass} can turn them into per-key softmax mass
 * after the pass, {@code exp(s − m_b)·exp(m_b − lse)}, with one exponential per block and head
 * instead of one per key, and without reading the keys again.
 *
 * <p>Every step uses operations whose results are defined to the bit ({@link SoftmaxExp} for the
 * weights, {@code StrictMath.log} for the log-sum-exp, sums in a fixed order), so a pass gives the
 * same bits in every JIT tier and on every thread.
 *
 * <p>Allocation happens only in the constructor and when the logit record has to grow; a state is
 * reused across decode steps. Not thread-safe: one state per thread.
 */
public final class GroupAttention {
    /** Keys processed per online-softmax block. */
    public static final int BLOCK = 16;

    final int headDim;
    final int group;
    /**
     * The GQA group whose single-token pass each run of {@code unit} rows reproduces: a state of
     * {@code group = tokens × unit} rows attends several tokens' query heads at once (prefill
     * tiles), and the kernels then keep each row's arithmetic exactly as in a pass of {@code unit}
     * rows, so a row's bits do not depend on the tile it ran in.
     */
    final int unit;

    final float[] q;
    final float[] m;
    /**
     * Running sums of the softmax weights by block position, {@code [group][BLOCK]}: {@code
     * l[h·BLOCK + j]} adds head {@code h}'s weights of keys {@code j, j + BLOCK, …} (a lane-wise
     * vector add per block, no horizontal sum); {@link #finish} adds the sixteen in a fixed order.
     */
    final float[] l;

    final float[] acc;
    final float[] blockLogits;
    final float[] kBuf;
    final float[] vBuf;
    /**
     * One block of stored values ({@link ValueChunks} layout, up to 4 bytes an element): the rows of a
     * scan that starts inside a stored block, which lie across two of them, are copied here first.
     */
    final MemorySegment valueScratch;

    final float[] lse;
    /** The recorded weights {@code exp(s − m_b)}, {@code [group][logitsStride]} by slot. */
    float[] logits;

    int logitsStride;
    boolean recording;
    /** Recorded blocks, in the order the pass ran them: first slot and number of slots. */
    int[] recStart = new int[0];

    int[] recLen = new int[0];
    /** Per head and recorded block, the running maximum its weights are relative to, {@code [group][recCap]}. */
    float[] recMax = new float[0];
    /** Scratch of {@link AttentionKernel#mass}: {@code exp(recMax − lse)}, {@code [group][recCap]}. */
    float[] recScale = new float[0];

    int recCap;
    int recBlocks;
    private final AttentionKernel kernel;

    /** Creates state for {@code group} query heads of {@code headDim} elements, with the process's kernel. */
    public GroupAttention(int group, int headDim) {
        this(group, headDim, AttentionKernels.get());
    }

    /** Creates state whose online-softmax steps run on {@code kernel}. */
    public GroupAttention(int group, int headDim, AttentionKernel kernel) {
        this(group, headDim, kernel, group);
    }

    /**
     * Creates state for {@code group} rows made of {@code group / unit} tokens' query heads, each
     * token's {@code unit} rows computed exactly as a state of {@code unit} rows computes them (see
     * {@link #beginTokens} and {@link #copyTokenTo}).
     */
    public GroupAttention(int group, int headDim, AttentionKernel kernel, int unit) {
        this.kernel = java.util.Objects.requireNonNull(kernel, "kernel");
        if (group <= 0 || headDim <= 0) {
            throw new IllegalArgumentException("group and headDim must be >= 1, were " + group + " and " + headDim);
        }
        if (unit <= 0 || group % unit != 0) {
            throw new IllegalArgumentException("unit must divide group " + group + ", was " + unit);
        }
        this.unit = unit;
        this.group = group;
        this.headDim = headDim;
        this.q = new float[group * headDim];
        this.m = new float[group];
        this.l = new float[group * BLOCK];
        this.acc = new float[group * headDim];
        // two blocks: a kernel may score two blocks of a page in one pass
        this.blockLogits = new float[2 * group * BLOCK];
        this.kBuf = new float[BLOCK * headDim];
        this.vBuf = new float[BLOCK * headDim];
        this.valueScratch = MemorySegment.ofArray(new long[2 * BLOCK * headDim]);
        this.lse = new float[group];
        this.logits = new float[0];
    }

    public int group() {
        return group;
    }

    public int headDim() {
        return headDim;
    }

    /** Rows per token: the GQA group each token's rows are computed as (see the constructor). */
    public int unit() {
        return unit;
    }

    /**
     * Starts a pass over {@code group / unit} tokens: token {@code i}'s {@code unit · headDim} query
     * floats are read from {@code queries[offset + i·stride ..]}, multiplied by {@code scale}; the
     * running state is reset and logit recording is off.
     */
    public void beginTokens(float[] queries, int offset, int stride, float scale) {
        int rowFloats = unit * headDim;
        for (int t = 0, tokens = group / unit; t < tokens; t++) {
            int src = offset + t * stride;
            int dst = t * rowFloats;
            for (int i = 0; i < rowFloats; i++) {
                q[dst + i] = queries[src + i] * scale;
            }
        }
        Arrays.fill(m, Float.NEGATIVE_INFINITY);
        Arrays.fill(l, 0f);
        Arrays.fill(acc, 0f);
        recording = false;
    }

    /**
     * Copies token {@code token}'s rows of this pass (scaled queries and running state) into {@code
     * dst}, a state of {@code unit} rows and the same head size, which can then scan further keys
     * and {@link #finish} as if it had run the whole pass itself.
     */
    public void copyTokenTo(int token, GroupAttention dst) {
        if (dst.group != unit || dst.headDim != headDim) {
            throw new IllegalArgumentException(
                    "destination has " + dst.group + " rows of " + dst.headDim + "; needs " + unit + " of " + headDim);
        }
        if (token < 0 || token >= group / unit) {
            throw new IndexOutOfBoundsException("token " + token + " out of range [0, " + group / unit + ")");
        }
        int rowFloats = unit * headDim;
        System.arraycopy(q, token * rowFloats, dst.q, 0, rowFloats);
        System.arraycopy(acc, token * rowFloats, dst.acc, 0, rowFloats);
        System.arraycopy(m, token * unit, dst.m, 0, unit);
        System.arraycopy(l, token * unit * BLOCK, dst.l, 0, unit * BLOCK);
        dst.recording = false;
    }

    /**
     * Starts a pass: copies {@code group * headDim} query floats from {@code queries[offset..]},
     * multiplied by {@code scale} (usually {@code 1/sqrt(headDim)}), and resets the running state.
     * Logit recording is switched off; call {@link #recordLogits(int)} after this to switch it on.
     */
    public void begin(float[] queries, int offset, float scale) {
        beginTokens(queries, offset, unit * headDim, scale);
    }

    /**
     * Keeps the softmax weights of slots {@code [0, slots)} of this pass and each block's running
     * maximum, for {@link AttentionKernel#mass}. Grows the record (amortised doubling) when needed.
     */
    public void recordLogits(int slots) {
        if (slots > logitsStride) {
            int stride = Math.max(slots, Math.max(64, logitsStride * 2));
            logits = new float[Math.multiplyExact(stride, group)];
            logitsStride = stride;
        }
        recBlocks = 0;
        if (recCap < slots / BLOCK + 16) {
            growBlockRecord(Math.max(slots / BLOCK + 16, 2 * recCap));
        }
        recording = true;
    }

    /**
     * Doubles the block record: a kernel calls this before recording a block when the record is
     * full (a pass of more, shorter blocks than its {@code slots / BLOCK}, at page or selection
     * edges). A recorded block {@code b} then gets its first slot and length in {@code
     * recStart[b]}, {@code recLen[b]} and head {@code h}'s running maximum in {@code recMax[h·recCap
     * + b]}, and {@code recBlocks} counts it.
     */
    void growBlockRecord() {
        growBlockRecord(2 * recCap);
    }

    private void growBlockRecord(int cap) {
        int[] start = Arrays.copyOf(recStart, cap);
        int[] len = Arrays.copyOf(recLen, cap);
        float[] max = new float[Math.multiplyExact(cap, group)];
        for (int h = 0; h < group; h++) {
            System.arraycopy(recMax, h * recCap, max, h * cap, recBlocks);
        }
        recStart = start;
        recLen = len;
        recMax = max;
        recScale = new float[max.length];
        recCap = cap;
    }

    /** Ends the pass, writing per-head output and log-sum-exp into {@code dst} heads {@code [dstHead, dstHead + group)}. */
    public void finish(Partial dst, int dstHead) {
        float[] out = dst.out();
        float[] dstLse = dst.lse();
        for (int h = 0; h < group; h++) {
            int base = (dstHead + h) * headDim;
            float sum = ScalarAttentionKernel.blockSum(l, h * BLOCK);
            if (sum == 0f) {
                Arrays.fill(out, base, base + headDim, 0f);
                dstLse[dstHead + h] = Float.NEGATIVE_INFINITY;
                lse[h] = Float.NEGATIVE_INFINITY;
                continue;
            }
            float inv = 1f / sum;
            for (int i = 0; i < headDim; i++) {
                out[base + i] = acc[h * headDim + i] * inv;
            }
            lse[h] = m[h] + (float) StrictMath.log(sum);
            dstLse[dstHead + h] = lse[h];
        }
    }

    /** Writes the normalised outputs of the finished pass into {@code out[offset..offset + group*headDim)}. */
    public void finish(float[] out, int offset) {
        for (int h = 0; h < group; h++) {
            int base = offset + h * headDim;
            float sum = ScalarAttentionKernel.blockSum(l, h * BLOCK);
            if (sum == 0f) {
                Arrays.fill(out, base, base + headDim, 0f);
                lse[h] = Float.NEGATIVE_INFINITY;
                continue;
            }
            float inv = 1f / sum;
            for (int i = 0; i < headDim; i++) {
                out[base + i] = acc[h * headDim + i] * inv;
            }
            lse[h] = m[h] + (float) StrictMath.log(sum);
        }
    }

    /** The pass's queries, already scaled, head-major {@code [group][headDim]}. Read-only. */
    public float[] queries() {
        return q;
    }

    /**
     * The unnormalised output accumulator, head-major {@code [group][headDim]}: after {@link
     * #pushLogits} the caller adds {@code Σ_j w[h][j]·v_j} into row {@code h}.
     */
    public float[] accumulator() {
        return acc;
    }

    /**
     * One online-softmax step for a block of {@code nb <= BLOCK} keys whose scaled logits were computed
     * outside the kernels (for example on packed codes): {@code logits[h·BLOCK + j]} is head {@code
     * h}'s logit for key {@code j}, {@code slot} the slot index of key 0 (for the logit record). Raises
     * the running maximum, rescales the running sum and the accumulator, and replaces the logits by
     * their weights {@code exp(s − m)}; the caller then accumulates the weighted values.
     */
    public void pushLogits(float[] logits, int nb, int slot) {
        if (nb < 1 || nb > BLOCK) {
            throw new IllegalArgumentException("nb " + nb + " out of range [1, " + BLOCK + "]");
        }
        for (int h = 0; h < group; h++) {
            System.arraycopy(logits, h * BLOCK, blockLogits, h * BLOCK, nb);
        }
        for (int h = 0; h < group; h++) {
            java.util.Arrays.fill(blockLogits, h * BLOCK + nb, (h + 1) * BLOCK, Float.NEGATIVE_INFINITY);
        }
        kernel.onlineSoftmax(this, nb, slot);
        for (int h = 0; h < group; h++) {
            System.arraycopy(blockLogits, h * BLOCK, logits, h * BLOCK, nb);
        }
    }

    /**
     * Merges a partial computed elsewhere (another tier, a device, a retrieved subset) into the
     * running state: {@code out[outOffset + h·headDim ..]} is head {@code h}'s normalised output over
     * keys this pass has not seen and {@code lse[lseOffset + h]} its log-sum-exp ({@code −∞}: empty,
     * ignored). Exact up to float rounding, in any order with the blocks of the pass.
     */
    public void mergePartial(float[] out, int outOffset, float[] lse, int lseOffset) {
        for (int h = 0; h < group; h++) {
            float b = lse[lseOffset + h];
            if (b == Float.NEGATIVE_INFINITY) {
                continue;
            }
            if (Float.isNaN(b) || b == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException("lse of head " + h + " is " + b + "; must be finite or -Infinity");
            }
            float mNew = Math.max(m[h], b);
            float ca = m[h] == Float.NEGATIVE_INFINITY ? 0f : SoftmaxExp.exp(m[h] - mNew);
            float cb = SoftmaxExp.exp(b - mNew);
            // The sums by block position all rescale; the partial's weight joins position 0.
            for (int j = 0; j < BLOCK; j++) {
                l[h * BLOCK + j] *= ca;
            }
            l[h * BLOCK] += cb;
            int base = h * headDim;
            for (int i = 0; i < headDim; i++) {
                acc[base + i] = Math.fma(cb, out[outOffset + base + i], acc[base + i] * ca);
            }
            m[h] = mNew;
        }
    }

    /** The kernel this state's online-softmax steps run on. */
    public AttentionKernel kernel() {
        return kernel;
    }

    /** Log-sum-exp of head {@code h} of the last finished pass. */
    public float lse(int h) {
        return lse[h];
    }
}
