package io.kvcache4j.quantization;

import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.store.HeadStore;
import java.util.ArrayList;
import java.util.List;

/** The codec configurations and kernel families the tests run, and a float64 attention reference. */
final class Codecs {
    private Codecs() {}

    /** A codec kernel with the online-softmax kernel of the same family. */
    record Family(String name, CodecKernel codec, AttentionKernel softmax) {
        @Override
        public String toString() {
            return name;
        }
    }

    /** Panama (when the Vector API is present) and scalar. */
    static List<Family> families() {
        List<Family> f = new ArrayList<>();
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()) {
            f.add(new Family("panama", CodecKernels.panama(), AttentionKernels.get()));
        }
        f.add(new Family("scalar", CodecKernels.scalar(), AttentionKernels.scalar()));
        return f;
    }

    /** A codec under test: {@code int8}, or KIVI with a configuration. */
    record Codec(String name, KiviConfig kivi) {
        static Codec int8() {
            return new Codec("int8", null);
        }

        static Codec kivi(int bits, int g, int r, int vg) {
            return new Codec("int" + bits + "-g" + g + "-r" + r + "-v" + vg, new KiviConfig(bits, g, r, vg));
        }

        static Codec kiviHalfScales(int bits, int g, int r, int vg) {
            return new Codec(
                    "int" + bits + "-g" + g + "-r" + r + "-v" + vg + "-f16s",
                    new KiviConfig(bits, g, r, vg, io.kvcache4j.api.KvDType.F16));
        }

        HeadStore create(int headDim, int pageTokens, CodecKernel kernel) {
            return kivi == null
                    ? new Int8HeadStore(headDim, pageTokens, kernel)
                    : new KiviHeadStore(kivi, headDim, pageTokens, kernel);
        }

        int granularity() {
            return kivi == null ? 1 : kivi.groupTokens();
        }

        @Override
        public String toString() {
            return name;
        }
    }

    /** Codecs over head dimensions that their value groups divide. */
    static List<Codec> codecs() {
        return List.of(
                Codec.int8(),
                Codec.kivi(4, 32, 128, 32),
                Codec.kivi(2, 32, 128, 32),
                Codec.kivi(4, 16, 32, 8),
                Codec.kivi(2, 8, 16, 8),
                Codec.kivi(4, 4, 0, 8),
                Codec.kivi(2, 24, 48, 8),
                Codec.kivi(4, 5, 10, 8),
                Codec.kiviHalfScales(4, 32, 128, 32),
                Codec.kiviHalfScales(2, 8, 16, 8),
                Codec.kiviHalfScales(4, 5, 10, 8));
    }

    /**
     * Checks key logits {@code out[h·stride + j]} for slots {@code j < slots} against float64 dot
     * products of the queries with the keys the store reproduces ({@link HeadStore#readKey}), within
     * {@code 1e-5·(1 + Σ_i |q_i·k_i|)}.
     */
    static void checkKeyScores(
            HeadStore store, int d, float[] queries, int group, int slots, float[] out, int stride, String where) {
        float[] key = new float[d];
        for (int j = 0; j < slots; j++) {
            store.readKey(j, key, 0);
            for (int h = 0; h < group; h++) {
                double ref = 0;
                double mag = 0;
                for (int i = 0; i < d; i++) {
                    ref += (double) queries[h * d + i] * key[i];
                    mag += Math.abs((double) queries[h * d + i] * key[i]);
                }
                double got = out[h * stride + j];
                org.junit.jupiter.api.Assertions.assertTrue(
                        Math.abs(got - ref) <= 1e-5 * (1 + mag),
                        where + " slot " + j + " head " + h + ": " + got + " vs " + ref);
            }
        }
    }

    /**
     * Float64 attention of {@code group} query heads (already scaled, as GroupAttention holds them)
     * over {@code slots[0..n)} of a store, on the rows the store reproduces ({@link HeadStore#readKey},
     * {@link HeadStore#readValue}, the dequantized codes).
     */
    static double[] reference(HeadStore store, int headDim, float[] q, int group, int[] slots, int n) {
        double[] out = new double[group * headDim];
        double[][] k = new double[n][headDim];
        double[][] v = new double[n][headDim];
        float[] row = new float[headDim];
        for (int j = 0; j < n; j++) {
            store.readKey(slots[j], row, 0);
            for (int i = 0; i < headDim; i++) {
                k[j][i] = row[i];
            }
            store.readValue(slots[j], row, 0);
            for (int i = 0; i < headDim; i++) {
                v[j][i] = row[i];
            }
        }
        for (int h = 0; h < group; h++) {
            double[] logit = new double[n];
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int i = 0; i < headDim; i++) {
                    s += q[h * headDim + i] * k[j][i];
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
                for (int i = 0; i < headDim; i++) {
                    out[h * headDim + i] += p * v[j][i];
                }
            }
        }
        return out;
    }
}
