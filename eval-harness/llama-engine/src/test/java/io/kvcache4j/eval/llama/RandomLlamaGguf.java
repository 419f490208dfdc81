package io.kvcache4j.eval.llama;

import io.kvcache4j.eval.gguf.GgmlType;
import io.kvcache4j.eval.gguf.GgufWriter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Writes a Llama-architecture GGUF file with random weights of a given shape and matrix type, for
 * tests and benchmarks of the engine. Weights are scaled like a trained model's (unit-variance
 * activations), so logits stay in a realistic range. K-quant matrices (Q4_K, Q6_K) are written as
 * random blocks in ggml's layout with small scales.
 */
public final class RandomLlamaGguf {
    private RandomLlamaGguf() {}

    public static void write(Path path, LlamaConfig c, GgmlType matrixType, long seed) throws IOException {
        SplittableRandom r = new SplittableRandom(seed);
        GgufWriter w = new GgufWriter()
                .putString("general.architecture", "llama")
                .putString("general.name", "random-llama")
                .putUInt32("llama.context_length", Math.max(1, c.contextLength()))
                .putUInt32("llama.embedding_length", c.dim())
                .putUInt32("llama.block_count", c.layers())
                .putUInt32("llama.feed_forward_length", c.ffnDim())
                .putUInt32("llama.attention.head_count", c.heads())
                .putUInt32("llama.attention.head_count_kv", c.kvHeads())
                .putUInt32("llama.rope.dimension_count", c.headDim())
                .putFloat32("llama.rope.freq_base", c.ropeTheta())
                .putFloat32("llama.attention.layer_norm_rms_epsilon", c.rmsEps());
        int qDim = c.heads() * c.headDim();
        int kvDim = c.kvHeads() * c.headDim();
        matrix(w, "token_embd.weight", c.vocabSize(), c.dim(), 1.0, matrixType, r);
        for (int l = 0; l < c.layers(); l++) {
            String p = "blk." + l + ".";
            vector(w, p + "attn_norm.weight", c.dim(), r);
            matrix(w, p + "attn_q.weight", qDim, c.dim(), 2 / Math.sqrt(c.dim()), matrixType, r);
            matrix(w, p + "attn_k.weight", kvDim, c.dim(), 2 / Math.sqrt(c.dim()), matrixType, r);
            matrix(w, p + "attn_v.weight", kvDim, c.dim(), 1 / Math.sqrt(c.dim()), matrixType, r);
            matrix(w, p + "attn_output.weight", c.dim(), qDim, 1 / Math.sqrt(qDim), matrixType, r);
            vector(w, p + "ffn_norm.weight", c.dim(), r);
            matrix(w, p + "ffn_gate.weight", c.ffnDim(), c.dim(), 1 / Math.sqrt(c.dim()), matrixType, r);
            matrix(w, p + "ffn_up.weight", c.ffnDim(), c.dim(), 1 / Math.sqrt(c.dim()), matrixType, r);
            matrix(w, p + "ffn_down.weight", c.dim(), c.ffnDim(), 1 / Math.sqrt(c.ffnDim()), matrixType, r);
        }
        vector(w, "output_norm.weight", c.dim(), r);
        matrix(w, "output.weight", c.vocabSize(), c.dim(), 1 / Math.sqrt(c.dim()), matrixType, r);
        w.write(path);
    }

    private static void vector(GgufWriter w, String name, int n, SplittableRandom r) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = 0.5f + (float) r.nextDouble();
        }
        w.addTensor(name, GgmlType.F32, new long[] {n}, a);
    }

    private static void matrix(
            GgufWriter w, String name, int rows, int cols, double scale, GgmlType type, SplittableRandom r) {
        long[] ne = {cols, rows};
        switch (type) {
            case Q4_K, Q6_K -> w.addTensorBytes(name, type, ne, kQuantBlocks(type, (long) rows * cols, scale, r));
            default -> {
                float[] a = new float[rows * cols];
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) ((r.nextDouble() * 2 - 1) * scale * Math.sqrt(3));
                }
                w.addTensor(name, type, ne, a);
            }
        }
    }

    /** Random K-quant blocks: random codes and sub-block scales, super-block scales sized to {@code scale}. */
    private static byte[] kQuantBlocks(GgmlType type, long n, double scale, SplittableRandom r) {
        int blocks = (int) (n / 256);
        byte[] b = new byte[(int) type.bytesFor(n)];
        r.nextBytes(b);
        for (int i = 0; i < blocks; i++) {
            if (type == GgmlType.Q4_K) {
                // {f16 d, f16 dmin, u8 scales[12], u8 qs[128]}: value = d*sc*q - dmin*m, q in [0,15], sc,m in [0,63]
                int o = i * 144;
                putHalf(b, o, (float) (scale * Math.sqrt(3) / (15 * 31.5)));
                putHalf(b, o + 2, (float) (scale * Math.sqrt(3) / 63));
            } else {
                // {u8 ql[128], u8 qh[64], i8 scales[16], f16 d}: value = d*sc*(q-32), q in [0,63], sc in int8
                int o = i * 210;
                for (int s = 0; s < 16; s++) {
                    b[o + 192 + s] = (byte) (r.nextInt(127) - 63);
                }
                putHalf(b, o + 208, (float) (scale * Math.sqrt(3) / (32 * 63)));
            }
        }
        return b;
    }

    private static void putHalf(byte[] b, int at, float v) {
        short h = Float.floatToFloat16(v);
        b[at] = (byte) h;
        b[at + 1] = (byte) (h >> 8);
    }
}
