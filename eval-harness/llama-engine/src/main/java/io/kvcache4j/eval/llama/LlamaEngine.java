package io.kvcache4j.eval.llama;

import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;

/**
 * A Llama-architecture forward pass (RMSNorm, RoPE, grouped-query attention, SwiGLU) whose every
 * attention call goes through a {@link KvCache}: keys are rotated before they are appended, so the
 * cache stores post-RoPE keys, and whatever eviction policy, codec or tier the cache was built with
 * applies unchanged.
 *
 * <p>The cache-facing code is three calls per layer — {@code append}, {@code attend}, and, after the
 * prompt, {@code endPrefill} — which is all another engine needs to adopt kvcache4j.
 *
 * <p>RoPE rotates adjacent pairs {@code (x[2i], x[2i+1])} by {@code pos·θ^(−2i/headDim)} (llama.cpp's
 * "normal" RoPE for the llama architecture), with optional llama3 frequency factors and linear
 * position scaling.
 *
 * <p>An engine holds scratch sized for {@code maxChunk} tokens and is not thread-safe; weights may
 * be shared by several engines.
 */
public final class LlamaEngine {
    private final LlamaWeights weights;
    private final LlamaConfig c;
    private final int maxChunk;
    private final float[] invFreq;
    private final float[] x;
    private final float[] xb;
    private final float[] q;
    private final float[] k;
    private final float[] v;
    private final float[] att;
    private final float[] gate;
    private final float[] up;
    private final float[] logits;
    private final float[] last;
    private final float[] lastNormed;

    public LlamaEngine(LlamaWeights weights, int maxChunk) {
        if (maxChunk < 1) {
            throw new IllegalArgumentException("maxChunk must be >= 1, was " + maxChunk);
        }
        this.weights = weights;
        this.c = weights.config();
        this.maxChunk = maxChunk;
        int half = c.headDim() / 2;
        this.invFreq = new float[half];
        float[] factors = weights.ropeFrequencyFactors();
        if (factors != null && factors.length != half) {
            throw new IllegalArgumentException(
                    "rope frequency factors have " + factors.length + " values; expected headDim/2 = " + half);
        }
        for (int i = 0; i < half; i++) {
            double f = Math.pow(c.ropeTheta(), -2.0 * i / c.headDim());
            if (factors != null) {
                f /= factors[i];
            }
            invFreq[i] = (float) f;
        }
        int qDim = c.heads() * c.headDim();
        int kvDim = c.kvHeads() * c.headDim();
        this.x = new float[maxChunk * c.dim()];
        this.xb = new float[maxChunk * Math.max(c.dim(), qDim)];
        this.q = new float[maxChunk * qDim];
        this.k = new float[maxChunk * kvDim];
        this.v = new float[maxChunk * kvDim];
        this.att = new float[maxChunk * qDim];
        this.gate = new float[maxChunk * c.ffnDim()];
        this.up = new float[maxChunk * c.ffnDim()];
        this.logits = new float[c.vocabSize()];
        this.last = new float[c.dim()];
        this.lastNormed = new float[c.dim()];
        this.attentionNormStep = this::attentionNorm;
        this.ropeStep = this::rope;
        this.ffnNormStep = this::ffnNorm;
        this.siluStep = this::silu;
        this.residualStep = this::residual;
    }

    public LlamaConfig config() {
        return c;
    }

    /** Throws unless {@code cache} has this model's shape. */
    public void checkCache(KvCache cache) {
        ModelShape want = c.cacheShape();
        if (!cache.shape().equals(want)) {
            throw new IllegalArgumentException("cache shape " + cache.shape() + " does not match the model's " + want);
        }
    }

    /**
     * Runs {@code tokens[from..from+count)} through the model at the cache's next positions, in
     * chunks of at most {@code maxChunk}, and returns the logits of the last token (a scratch array
     * overwritten by the next call).
     */
    public float[] forward(int[] tokens, int from, int count, KvCache cache) {
        checkCache(cache);
        if (count < 1) {
            throw new IllegalArgumentException("count must be >= 1, was " + count);
        }
        for (int done = 0; done < count; ) {
            int n = Math.min(maxChunk, count - done);
            chunk(tokens, from + done, n, cache);
            done += n;
        }
        return logitsOfLast();
    }

    private void chunk(int[] tokens, int from, int n, KvCache cache) {
        final int dim = c.dim();
        Matrix emb = weights.tokenEmbedding();
        for (int t = 0; t < n; t++) {
            int id = tokens[from + t];
            if (id < 0 || id >= c.vocabSize()) {
                throw new IllegalArgumentException(
                        "token id " + id + " at index " + (from + t) + " out of range [0, " + c.vocabSize() + ")");
            }
            emb.row(id, x, t * dim);
        }
        for (int l = 0; l < c.layers(); l++) {
            layer = l;
            position0 = cache.nextPosition(l);
            Parallel.forRange(n, attentionNormStep);
            weights.wq(l).matmul(xb, n, q);
            weights.wk(l).matmul(xb, n, k);
            weights.wv(l).matmul(xb, n, v);
            Parallel.forRange(n, ropeStep);
            cache.append(l, k, 0, v, 0, n);
            cache.attend(l, q, 0, n, att, 0);
            weights.wo(l).matmul(att, n, xb);
            Parallel.forRange(n, ffnNormStep);
            weights.wGate(l).matmul(xb, n, gate);
            weights.wUp(l).matmul(xb, n, up);
            Parallel.forRange(n, siluStep);
            weights.wDown(l).matmul(gate, n, xb);
            Parallel.forRange(n, residualStep);
        }
        System.arraycopy(x, (n - 1) * dim, last, 0, dim);
    }

    // The per-token steps of a chunk between its matmuls, over token ranges [t0, t1): each token's
    // elements are computed as one loop over the chunk computes them, so the split never changes a
    // bit. The step objects are created once, so that a decode step allocates nothing for them; they
    // read the layer and first position of the chunk from these fields.
    private int layer;
    private int position0;
    private final Parallel.RangeBody attentionNormStep;
    private final Parallel.RangeBody ropeStep;
    private final Parallel.RangeBody ffnNormStep;
    private final Parallel.RangeBody siluStep;
    private final Parallel.RangeBody residualStep;

    private void attentionNorm(int t0, int t1) {
        rmsNorm(x, xb, weights.attentionNorm(layer), t0, t1, c.dim());
    }

    private void rope(int t0, int t1) {
        int qRow = c.heads() * c.headDim();
        int kRow = c.kvHeads() * c.headDim();
        for (int t = t0; t < t1; t++) {
            rope(q, t * qRow, c.heads(), k, t * kRow, c.kvHeads(), position0 + t);
        }
    }

    /** The attention's residual add, then the norm of the sum. */
    private void ffnNorm(int t0, int t1) {
        residual(t0, t1);
        rmsNorm(x, xb, weights.ffnNorm(layer), t0, t1, c.dim());
    }

    private void silu(int t0, int t1) {
        for (int i = t0 * c.ffnDim(), e = t1 * c.ffnDim(); i < e; i++) {
            float g = gate[i];
            gate[i] = g / (1f + (float) Math.exp(-g)) * up[i];
        }
    }

    private void residual(int t0, int t1) {
        for (int i = t0 * c.dim(), e = t1 * c.dim(); i < e; i++) {
            x[i] += xb[i];
        }
    }

    private float[] logitsOfLast() {
        rmsNorm(last, lastNormed, weights.outputNorm(), 1, c.dim());
        weights.output().matmul(lastNormed, 1, logits);
        return logits;
    }

    private void rmsNorm(float[] in, float[] out, float[] w, int n, int dim) {
        rmsNorm(in, out, w, 0, n, dim);
    }

    /** {@link #rmsNorm(float[], float[], float[], int, int)} of tokens {@code [t0, t1)}. */
    private void rmsNorm(float[] in, float[] out, float[] w, int t0, int t1, int dim) {
        for (int t = t0; t < t1; t++) {
            int b = t * dim;
            double ss = 0;
            for (int i = 0; i < dim; i++) {
                ss += (double) in[b + i] * in[b + i];
            }
            float inv = (float) (1.0 / Math.sqrt(ss / dim + c.rmsEps()));
            for (int i = 0; i < dim; i++) {
                out[b + i] = in[b + i] * inv * w[i];
            }
        }
    }

    /** Rotates one token's query heads and key heads at {@code position}; each angle's cos and sin once for both. */
    private void rope(float[] q, int qOff, int heads, float[] k, int kOff, int kvHeads, int position) {
        float p = position / c.ropeLinearFactor();
        int hd = c.headDim();
        for (int i = 0; i < hd / 2; i++) {
            double angle = p * (double) invFreq[i];
            float cos = (float) Math.cos(angle);
            float sin = (float) Math.sin(angle);
            rotate(q, qOff + 2 * i, heads, hd, cos, sin);
            rotate(k, kOff + 2 * i, kvHeads, hd, cos, sin);
        }
    }

    private static void rotate(float[] a, int at, int heads, int hd, float cos, float sin) {
        for (int h = 0; h < heads; h++) {
            int j = at + h * hd;
            float a0 = a[j];
            float a1 = a[j + 1];
            a[j] = a0 * cos - a1 * sin;
            a[j + 1] = a0 * sin + a1 * cos;
        }
    }

    /** Index of the largest logit (ties: lowest index). */
    public static int argmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    /** Samples from softmax(logits / temperature) with {@code uniform} in [0, 1). */
    public static int sample(float[] logits, float temperature, double uniform) {
        if (!(temperature > 0)) {
            throw new IllegalArgumentException("temperature must be > 0, was " + temperature);
        }
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        double[] p = new double[logits.length];
        for (int i = 0; i < logits.length; i++) {
            p[i] = Math.exp((logits[i] - max) / temperature);
            sum += p[i];
        }
        double r = uniform * sum;
        for (int i = 0; i < p.length; i++) {
            r -= p[i];
            if (r < 0) {
                return i;
            }
        }
        return p.length - 1;
    }
}
