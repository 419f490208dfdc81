package io.kvcache4j.attention;

import java.util.Arrays;

/**
 * Attention over one part of a key range, for a number of query heads: per head the normalised
 * output {@code o = Σ softmax(s)·v} over that part and its log-sum-exp {@code lse = log Σ exp(s)}
 * of the (scaled) logits.
 *
 * <p>Partials of disjoint key ranges merge exactly: {@code L = log Σ exp(lse_i)}, {@code o = Σ
 * exp(lse_i − L)·o_i}. A part with no keys has {@code lse = −∞} and weight zero. Merging in any
 * order or grouping gives attention over the union (up to float rounding). This is the unit that
 * tiers, codecs and retrieval compose through.
 *
 * <p>Mutable and not thread-safe: a partial is scratch owned by one caller.
 */
public final class Partial {
    private final int heads;
    private final int headDim;
    private final float[] out;
    private final float[] lse;

    /** Creates an empty partial (every head has {@code lse = −∞}, output zero). */
    public Partial(int heads, int headDim) {
        if (heads <= 0 || headDim <= 0) {
            throw new IllegalArgumentException("heads and headDim must be >= 1, were " + heads + " and " + headDim);
        }
        this.heads = heads;
        this.headDim = headDim;
        this.out = new float[heads * headDim];
        this.lse = new float[heads];
        clear();
    }

    public int heads() {
        return heads;
    }

    public int headDim() {
        return headDim;
    }

    /** Output vectors, head-major: {@code out[h * headDim + i]}. Live view, not a copy. */
    public float[] out() {
        return out;
    }

    /** Log-sum-exp per head. Live view, not a copy. */
    public float[] lse() {
        return lse;
    }

    /** Resets to the empty partial. */
    public void clear() {
        Arrays.fill(out, 0f);
        Arrays.fill(lse, Float.NEGATIVE_INFINITY);
    }

    /** Copies {@code other} into this partial. */
    public void copyFrom(Partial other) {
        checkCompatible(other);
        System.arraycopy(other.out, 0, out, 0, out.length);
        System.arraycopy(other.lse, 0, lse, 0, lse.length);
    }

    /** Replaces this partial by the exact merge of itself and {@code other}. */
    public void mergeFrom(Partial other) {
        checkCompatible(other);
        for (int h = 0; h < heads; h++) {
            float a = lse[h];
            float b = other.lse[h];
            if (b == Float.NEGATIVE_INFINITY) {
                continue;
            }
            if (a == Float.NEGATIVE_INFINITY) {
                System.arraycopy(other.out, h * headDim, out, h * headDim, headDim);
                lse[h] = b;
                continue;
            }
            float max = Math.max(a, b);
            float wa = (float) StrictMath.exp(a - max);
            float wb = (float) StrictMath.exp(b - max);
            float sum = wa + wb;
            float na = wa / sum;
            float nb = wb / sum;
            int base = h * headDim;
            for (int i = 0; i < headDim; i++) {
                out[base + i] = na * out[base + i] + nb * other.out[base + i];
            }
            lse[h] = max + (float) StrictMath.log(sum);
        }
    }

    /**
     * Writes into {@code dst} the exact merge of {@code parts[0..count)}. {@code dst} may be one of
     * the parts only if it is {@code parts[0]}.
     */
    public static void merge(Partial[] parts, int count, Partial dst) {
        if (count < 0 || count > parts.length) {
            throw new IllegalArgumentException("count " + count + " out of range [0, " + parts.length + "]");
        }
        for (int i = 0; i < count; i++) {
            dst.checkCompatible(parts[i]);
        }
        int d = dst.headDim;
        for (int h = 0; h < dst.heads; h++) {
            float max = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < count; i++) {
                max = Math.max(max, parts[i].lse[h]);
            }
            if (max == Float.NEGATIVE_INFINITY) {
                Arrays.fill(dst.out, h * d, (h + 1) * d, 0f);
                dst.lse[h] = Float.NEGATIVE_INFINITY;
                continue;
            }
            double sum = 0;
            for (int i = 0; i < count; i++) {
                sum += StrictMath.exp(parts[i].lse[h] - max);
            }
            float total = max + (float) StrictMath.log(sum);
            // Accumulate into a local order so that dst may alias parts[0].
            for (int j = 0; j < d; j++) {
                double acc = 0;
                for (int i = 0; i < count; i++) {
                    float l = parts[i].lse[h];
                    if (l != Float.NEGATIVE_INFINITY) {
                        acc += StrictMath.exp(l - total) * parts[i].out[h * d + j];
                    }
                }
                dst.out[h * d + j] = (float) acc;
            }
            dst.lse[h] = total;
        }
    }

    private void checkCompatible(Partial other) {
        if (other.heads != heads || other.headDim != headDim) {
            throw new IllegalArgumentException("partial shape [" + other.heads + " heads x " + other.headDim
                    + "] does not match [" + heads + " heads x " + headDim + "]");
        }
    }
}
