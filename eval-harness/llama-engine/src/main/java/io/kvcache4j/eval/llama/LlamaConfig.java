package io.kvcache4j.eval.llama;

import io.kvcache4j.api.ModelShape;

/**
 * Hyper-parameters of a Llama-architecture decoder.
 *
 * @param vocabSize tokens in the vocabulary
 * @param dim model (embedding) width
 * @param layers transformer blocks
 * @param heads query heads
 * @param kvHeads key/value heads (GQA when fewer than {@code heads})
 * @param headDim elements per head ({@code dim / heads} in standard models)
 * @param ffnDim SwiGLU hidden width
 * @param rmsEps RMSNorm epsilon
 * @param ropeTheta RoPE frequency base
 * @param ropeLinearFactor positions are divided by this ({@code llama.rope.scaling.type = linear}); 1 if none
 * @param contextLength the model's trained context length (informational; not enforced)
 */
public record LlamaConfig(
        int vocabSize,
        int dim,
        int layers,
        int heads,
        int kvHeads,
        int headDim,
        int ffnDim,
        float rmsEps,
        float ropeTheta,
        float ropeLinearFactor,
        int contextLength) {

    public LlamaConfig {
        positive("vocabSize", vocabSize);
        positive("dim", dim);
        positive("layers", layers);
        positive("heads", heads);
        positive("kvHeads", kvHeads);
        positive("headDim", headDim);
        positive("ffnDim", ffnDim);
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("heads " + heads + " must be a multiple of kvHeads " + kvHeads);
        }
        if (headDim % 2 != 0) {
            throw new IllegalArgumentException("headDim must be even for RoPE, was " + headDim);
        }
        if (!(rmsEps > 0) || !(ropeTheta > 0) || !(ropeLinearFactor > 0)) {
            throw new IllegalArgumentException("rmsEps, ropeTheta and ropeLinearFactor must be > 0, were " + rmsEps
                    + ", " + ropeTheta + ", " + ropeLinearFactor);
        }
    }

    /** The KV-cache geometry of this model. */
    public ModelShape cacheShape() {
        return new ModelShape(layers, heads, kvHeads, headDim);
    }

    private static void positive(String name, int v) {
        if (v <= 0) {
            throw new IllegalArgumentException(name + " must be >= 1, was " + v);
        }
    }
}
