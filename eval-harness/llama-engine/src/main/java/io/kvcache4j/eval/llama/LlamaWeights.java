package io.kvcache4j.eval.llama;

/** The tensors of a Llama-architecture model. Read-only and thread-safe. */
public interface LlamaWeights {
    LlamaConfig config();

    /** Token embedding table, {@code vocab × dim}. */
    Matrix tokenEmbedding();

    float[] attentionNorm(int layer);

    Matrix wq(int layer);

    Matrix wk(int layer);

    Matrix wv(int layer);

    Matrix wo(int layer);

    float[] ffnNorm(int layer);

    /** SwiGLU gate projection ({@code ffn_gate}). */
    Matrix wGate(int layer);

    /** SwiGLU up projection ({@code ffn_up}). */
    Matrix wUp(int layer);

    /** SwiGLU down projection ({@code ffn_down}). */
    Matrix wDown(int layer);

    float[] outputNorm();

    /** Output projection, {@code vocab × dim} (the embedding table when tied). */
    Matrix output();

    /**
     * Per-frequency divisors of RoPE ({@code rope_freqs.weight}, llama3-style scaling), {@code
     * headDim/2} values, or {@code null} when the model has none.
     */
    float[] ropeFrequencyFactors();
}
