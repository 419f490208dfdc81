package io.kvcache4j.eval.llama;

import java.util.SplittableRandom;

/** Random dense weights of a given config (for engine tests). */
final class RandomWeights implements LlamaWeights {
    private final LlamaConfig c;
    private final DenseMatrix emb;
    private final DenseMatrix out;
    private final DenseMatrix[][] m;
    private final float[][] attnNorm;
    private final float[][] ffnNorm;
    private final float[] outNorm;
    private final float[] ropeFactors;

    RandomWeights(LlamaConfig c, long seed, boolean ropeFactors) {
        this.c = c;
        SplittableRandom r = new SplittableRandom(seed);
        int qDim = c.heads() * c.headDim();
        int kvDim = c.kvHeads() * c.headDim();
        emb = dense(r, c.vocabSize(), c.dim(), 1.0);
        out = dense(r, c.vocabSize(), c.dim(), 1 / Math.sqrt(c.dim()));
        m = new DenseMatrix[c.layers()][];
        attnNorm = new float[c.layers()][];
        ffnNorm = new float[c.layers()][];
        for (int l = 0; l < c.layers(); l++) {
            m[l] = new DenseMatrix[] {
                dense(r, qDim, c.dim(), 2 / Math.sqrt(c.dim())),
                dense(r, kvDim, c.dim(), 2 / Math.sqrt(c.dim())),
                dense(r, kvDim, c.dim(), 1 / Math.sqrt(c.dim())),
                dense(r, c.dim(), qDim, 1 / Math.sqrt(qDim)),
                dense(r, c.ffnDim(), c.dim(), 1 / Math.sqrt(c.dim())),
                dense(r, c.ffnDim(), c.dim(), 1 / Math.sqrt(c.dim())),
                dense(r, c.dim(), c.ffnDim(), 1 / Math.sqrt(c.ffnDim()))
            };
            attnNorm[l] = norm(r, c.dim());
            ffnNorm[l] = norm(r, c.dim());
        }
        outNorm = norm(r, c.dim());
        if (ropeFactors) {
            this.ropeFactors = new float[c.headDim() / 2];
            for (int i = 0; i < this.ropeFactors.length; i++) {
                this.ropeFactors[i] = 1 + (float) r.nextDouble() * 7;
            }
        } else {
            this.ropeFactors = null;
        }
    }

    private static DenseMatrix dense(SplittableRandom r, int rows, int cols, double scale) {
        float[] a = new float[rows * cols];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) ((r.nextDouble() * 2 - 1) * scale * Math.sqrt(3));
        }
        return new DenseMatrix(rows, cols, a);
    }

    private static float[] norm(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 0.5f + (float) r.nextDouble();
        }
        return a;
    }

    @Override
    public LlamaConfig config() {
        return c;
    }

    @Override
    public Matrix tokenEmbedding() {
        return emb;
    }

    @Override
    public float[] attentionNorm(int l) {
        return attnNorm[l];
    }

    @Override
    public Matrix wq(int l) {
        return m[l][0];
    }

    @Override
    public Matrix wk(int l) {
        return m[l][1];
    }

    @Override
    public Matrix wv(int l) {
        return m[l][2];
    }

    @Override
    public Matrix wo(int l) {
        return m[l][3];
    }

    @Override
    public float[] ffnNorm(int l) {
        return ffnNorm[l];
    }

    @Override
    public Matrix wGate(int l) {
        return m[l][4];
    }

    @Override
    public Matrix wUp(int l) {
        return m[l][5];
    }

    @Override
    public Matrix wDown(int l) {
        return m[l][6];
    }

    @Override
    public float[] outputNorm() {
        return outNorm;
    }

    @Override
    public Matrix output() {
        return out;
    }

    @Override
    public float[] ropeFrequencyFactors() {
        return ropeFactors;
    }
}
