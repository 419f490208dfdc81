package io.kvcache4j.quantization;

import java.util.Arrays;

/**
 * The 1-bit codec written out plainly for the tests, independently of {@link OneBitHeadStore}: the
 * binary16 rows the store keeps, the two levels of every channel of every complete group, the codes,
 * and the rows they reproduce; and float64 attention over reproduced rows.
 */
final class OneBitReference {
    private OneBitReference() {}

    /** {@code x} rounded to binary16 and widened back. */
    static float f16(float x) {
        return Float.float16ToFloat(Float.floatToFloat16(x));
    }

    /**
     * The rows a store of {@code config} reproduces for {@code n} appended rows {@code x[t·d ..]}
     * (keys when {@code keys}, else values): complete groups quantized, the incomplete last group
     * binary16.
     */
    static float[] reproduce(OneBitConfig config, float[] x, int n, int d, boolean keys) {
        int g = config.groupTokens();
        float[] out = new float[n * d];
        for (int i = 0; i < n * d; i++) {
            out[i] = f16(x[i]);
        }
        float[] col = new float[g];
        for (int group = 0; group < n / g; group++) {
            for (int c = 0; c < d; c++) {
                for (int t = 0; t < g; t++) {
                    col[t] = f16(x[(group * g + t) * d + c]);
                }
                float lo;
                float hi;
                if (config.mode() == OneBitConfig.Mode.GROUP) {
                    double min = Double.POSITIVE_INFINITY;
                    double max = Double.NEGATIVE_INFINITY;
                    for (float v : col) {
                        min = Math.min(min, v);
                        max = Math.max(max, v);
                    }
                    double alpha = keys ? config.keyClip() : config.valueClip();
                    double mid = (min + max) / 2;
                    double half = alpha * (max - min) / 2;
                    lo = f16((float) (mid - half));
                    hi = f16((float) (mid + half));
                } else {
                    float[] s = col.clone();
                    Arrays.sort(s);
                    lo = f16((float) quantile(s, config.lowQuantile()));
                    hi = f16((float) quantile(s, config.highQuantile()));
                }
                float threshold = (float) (((double) lo + hi) / 2);
                for (int t = 0; t < g; t++) {
                    out[(group * g + t) * d + c] = col[t] >= threshold ? hi : lo;
                }
            }
        }
        return out;
    }

    private static double quantile(float[] sorted, double q) {
        double h = (sorted.length - 1) * q;
        int i = (int) Math.floor(h);
        if (i + 1 >= sorted.length) {
            return sorted[i];
        }
        return sorted[i] + (h - i) * ((double) sorted[i + 1] - sorted[i]);
    }

    /**
     * Float64 attention of {@code heads} query heads ({@code q}, already scaled, {@code [heads][d]})
     * over {@code slots}: outputs into {@code out} ({@code [heads][d]}), log-sum-exps into {@code
     * lse}, per-slot mass summed over heads into {@code mass}.
     */
    static void attend(
            float[] q,
            int heads,
            int d,
            float[] keys,
            float[] values,
            int[] slots,
            double[] out,
            double[] lse,
            double[] mass) {
        Arrays.fill(out, 0);
        Arrays.fill(mass, 0);
        int n = slots.length;
        for (int h = 0; h < heads; h++) {
            double[] logit = new double[n];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int c = 0; c < d; c++) {
                    s += (double) q[h * d + c] * keys[slots[j] * d + c];
                }
                logit[j] = s;
                max = Math.max(max, s);
            }
            double sum = 0;
            for (int j = 0; j < n; j++) {
                sum += Math.exp(logit[j] - max);
            }
            for (int j = 0; j < n; j++) {
                double p = Math.exp(logit[j] - max) / sum;
                mass[j] += p;
                for (int c = 0; c < d; c++) {
                    out[h * d + c] += p * values[slots[j] * d + c];
                }
            }
            lse[h] = max + Math.log(sum);
        }
    }
}
