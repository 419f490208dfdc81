package io.kvcache4j.eval.llama;

import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.gguf.WeightMatrix;
import java.io.IOException;
import java.nio.file.Path;

/**
 * Llama-architecture weights read in place from a GGUF file (llama.cpp's tensor names and metadata
 * keys). Matrices stay in their file type (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K) and are
 * multiplied on their own encoding. Closing releases the file mapping; the weights are unusable
 * afterwards.
 */
public final class GgufLlama implements LlamaWeights, AutoCloseable {
    private final GgufModel model;
    private final LlamaConfig config;
    private final Matrix embedding;
    private final Matrix output;
    private final Matrix[][] layers;
    private final float[][] attnNorm;
    private final float[][] ffnNorm;
    private final float[] outNorm;
    private final float[] ropeFactors;

    private GgufLlama(GgufModel model) {
        this.model = model;
        String arch = model.getString("general.architecture");
        if (!arch.equals("llama")) {
            throw new IllegalArgumentException(
                    "general.architecture is '" + arch + "'; this engine runs 'llama' models");
        }
        int dim = model.getInt("llama.embedding_length");
        int heads = model.getInt("llama.attention.head_count");
        int kvHeads = model.getInt("llama.attention.head_count_kv", heads);
        int headDim = model.getInt("llama.attention.key_length", dim / heads);
        int blocks = model.getInt("llama.block_count");
        // Each block is 9 tensors in the file: a count the file cannot hold is corrupt metadata, caught
        // before anything is sized by it.
        int tensors = model.tensors().size();
        if (blocks < 1 || blocks > tensors / 9) {
            throw new IllegalArgumentException("llama.block_count is " + blocks + ", but the file holds " + tensors
                    + " tensors, enough for at most " + tensors / 9 + " blocks of 9 tensors each");
        }
        float linear = 1f;
        if (model.getString("llama.rope.scaling.type", "none").equals("linear")) {
            linear = model.getFloat("llama.rope.scaling.factor");
        }
        WeightMatrix emb = model.weights("token_embd.weight");
        this.config = new LlamaConfig(
                emb.rows(),
                dim,
                blocks,
                heads,
                kvHeads,
                headDim,
                model.getInt("llama.feed_forward_length"),
                model.getFloat("llama.attention.layer_norm_rms_epsilon", 1e-5f),
                model.getFloat("llama.rope.freq_base", 10000f),
                linear,
                model.getInt("llama.context_length", 0));
        this.embedding = wrap(emb, config.vocabSize(), dim);
        this.output = model.hasTensor("output.weight")
                ? wrap(model.weights("output.weight"), config.vocabSize(), dim)
                : embedding;
        int qDim = heads * headDim;
        int kvDim = kvHeads * headDim;
        this.layers = new Matrix[blocks][];
        this.attnNorm = new float[blocks][];
        this.ffnNorm = new float[blocks][];
        for (int l = 0; l < blocks; l++) {
            String p = "blk." + l + ".";
            layers[l] = new Matrix[] {
                wrap(model.weights(p + "attn_q.weight"), qDim, dim),
                wrap(model.weights(p + "attn_k.weight"), kvDim, dim),
                wrap(model.weights(p + "attn_v.weight"), kvDim, dim),
                wrap(model.weights(p + "attn_output.weight"), dim, qDim),
                wrap(model.weights(p + "ffn_gate.weight"), config.ffnDim(), dim),
                wrap(model.weights(p + "ffn_up.weight"), config.ffnDim(), dim),
                wrap(model.weights(p + "ffn_down.weight"), dim, config.ffnDim())
            };
            attnNorm[l] = vector(p + "attn_norm.weight", dim);
            ffnNorm[l] = vector(p + "ffn_norm.weight", dim);
        }
        this.outNorm = vector("output_norm.weight", dim);
        this.ropeFactors = model.hasTensor("rope_freqs.weight") ? vector("rope_freqs.weight", headDim / 2) : null;
    }

    /** Opens and maps {@code path}; the caller closes the result. */
    public static GgufLlama open(Path path) throws IOException {
        GgufModel model = GgufModel.open(path);
        try {
            return new GgufLlama(model);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /** The underlying file (metadata, tokenizer). */
    public GgufModel model() {
        return model;
    }

    private float[] vector(String name, int expected) {
        float[] v = model.floats(name);
        if (v.length != expected) {
            throw new IllegalArgumentException(
                    "tensor " + name + " has " + v.length + " elements; expected " + expected);
        }
        return v;
    }

    private static Matrix wrap(WeightMatrix w, int rows, int cols) {
        if (w.rows() != rows || w.cols() != cols) {
            throw new IllegalArgumentException("tensor " + w.name() + " is " + w.rows() + " x " + w.cols()
                    + " (rows x cols); expected " + rows + " x " + cols);
        }
        return new Matrix() {
            @Override
            public int rows() {
                return rows;
            }

            @Override
            public int cols() {
                return cols;
            }

            @Override
            public void matmul(float[] x, int tokens, float[] y) {
                w.matmul(x, y, tokens);
            }

            @Override
            public void row(int r, float[] dst, int dstOff) {
                w.rowToFloats(r, dst, dstOff);
            }
        };
    }

    @Override
    public LlamaConfig config() {
        return config;
    }

    @Override
    public Matrix tokenEmbedding() {
        return embedding;
    }

    @Override
    public float[] attentionNorm(int layer) {
        return attnNorm[layer];
    }

    @Override
    public Matrix wq(int layer) {
        return layers[layer][0];
    }

    @Override
    public Matrix wk(int layer) {
        return layers[layer][1];
    }

    @Override
    public Matrix wv(int layer) {
        return layers[layer][2];
    }

    @Override
    public Matrix wo(int layer) {
        return layers[layer][3];
    }

    @Override
    public float[] ffnNorm(int layer) {
        return ffnNorm[layer];
    }

    @Override
    public Matrix wGate(int layer) {
        return layers[layer][4];
    }

    @Override
    public Matrix wUp(int layer) {
        return layers[layer][5];
    }

    @Override
    public Matrix wDown(int layer) {
        return layers[layer][6];
    }

    @Override
    public float[] outputNorm() {
        return outNorm;
    }

    @Override
    public Matrix output() {
        return output;
    }

    @Override
    public float[] ropeFrequencyFactors() {
        return ropeFactors;
    }

    @Override
    public void close() {
        model.close();
    }
}
