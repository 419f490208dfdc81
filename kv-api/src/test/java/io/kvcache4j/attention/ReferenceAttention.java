package io.kvcache4j.attention;

import io.kvcache4j.api.HeadView;
import io.kvcache4j.store.HeadStore;

/** Float64 attention over stored (already rounded) keys and values: the judge of the kernels. */
final class ReferenceAttention {
    final double[] out;
    final double lse;
    final double[] probs;
    /** Σ p·|v| per element: the scale against which rounding error of the weighted sum is judged. */
    final double[] absOut;

    private ReferenceAttention(double[] out, double[] absOut, double lse, double[] probs) {
        this.out = out;
        this.absOut = absOut;
        this.lse = lse;
        this.probs = probs;
    }

    /** {@link #of(float[], int, HeadView, int, int)} over the rows of a store. */
    static ReferenceAttention of(float[] q, int qOff, HeadStore store, int visible, int d) {
        return of(
                q,
                qOff,
                new HeadView() {
                    @Override
                    public int count() {
                        return store.count();
                    }

                    @Override
                    public int position(int slot) {
                        throw new UnsupportedOperationException("positions belong to the cache");
                    }

                    @Override
                    public void readKey(int slot, float[] dst, int offset) {
                        store.readKey(slot, dst, offset);
                    }

                    @Override
                    public void readValue(int slot, float[] dst, int offset) {
                        store.readValue(slot, dst, offset);
                    }
                },
                visible,
                d);
    }

    /** Attention of one query head {@code q[qOff..qOff+d)} over slots {@code [0, visible)} of {@code view}. */
    static ReferenceAttention of(float[] q, int qOff, HeadView view, int visible, int d) {
        double scale = 1.0 / Math.sqrt(d);
        double[] logits = new double[visible];
        float[] row = new float[d];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < visible; j++) {
            view.readKey(j, row, 0);
            double s = 0;
            for (int i = 0; i < d; i++) {
                s += (double) q[qOff + i] * row[i];
            }
            logits[j] = s * scale;
            max = Math.max(max, logits[j]);
        }
        double sum = 0;
        for (int j = 0; j < visible; j++) {
            sum += Math.exp(logits[j] - max);
        }
        double[] out = new double[d];
        double[] probs = new double[visible];
        double[] absOut = new double[d];
        for (int j = 0; j < visible; j++) {
            probs[j] = Math.exp(logits[j] - max) / sum;
            view.readValue(j, row, 0);
            for (int i = 0; i < d; i++) {
                out[i] += probs[j] * row[i];
                absOut[i] += probs[j] * Math.abs(row[i]);
            }
        }
        return new ReferenceAttention(
                out, absOut, visible == 0 ? Double.NEGATIVE_INFINITY : max + Math.log(sum), probs);
    }

    /**
     * max |a − ref| / max Σ p·|v| over a head's output: error relative to the magnitude of the
     * weighted sum's terms, which stays meaningful when the output itself cancels to near zero.
     */
    double relativeError(float[] a, int off) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < out.length; i++) {
            num = Math.max(num, Math.abs(a[off + i] - out[i]));
            den = Math.max(den, absOut[i]);
        }
        return den == 0 ? num : num / den;
    }
}
