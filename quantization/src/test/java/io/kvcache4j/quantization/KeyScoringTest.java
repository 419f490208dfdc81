package io.kvcache4j.quantization;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.KeyScoring;
import io.kvcache4j.store.NativeMemory;
import io.kvcache4j.store.PagedHeadStore;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BiFunction;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link KeyScoring} of the exact paged store and the 1-bit stores (the KIVI and int8 stores are
 * covered in {@link QuantizedStoreTest}): logits against float64 dot products with the keys each
 * store reproduces, on the Vector API and the scalar kernels (the same bits from both 1-bit kernels),
 * arguments checked.
 */
class KeyScoringTest {

    /** A store of {@code headDim} built with the Vector API kernels ({@code true}) or the scalar ones. */
    private static BiFunction<Integer, Boolean, HeadStore> maker(String kind) {
        return (d, vector) -> {
            AttentionKernel attention = vector ? AttentionKernels.get() : AttentionKernels.scalar();
            OneBitKernel bits = vector ? OneBitKernels.get() : OneBitKernels.scalar();
            return switch (kind) {
                case "f16" -> new PagedHeadStore(KvDType.F16, d, 32, attention);
                case "f32" -> new PagedHeadStore(KvDType.F32, d, 16, attention);
                case "1bit" -> new OneBitHeadStore(OneBitConfig.group(), d, bits, attention);
                case "1bit-quantile" -> new OneBitHeadStore(OneBitConfig.quantile(), d, bits, attention);
                default -> throw new IllegalArgumentException(kind);
            };
        };
    }

    @ParameterizedTest
    @ValueSource(strings = {"f16", "f32", "1bit", "1bit-quantile"})
    void logitsMatchFloat64DotProductsOnEveryKernel(String kind) {
        long seed = TestSeeds.seed("key-scoring-" + kind);
        SplittableRandom r = TestSeeds.random(seed);
        long live = NativeMemory.liveBytes();
        BiFunction<Integer, Boolean, HeadStore> make = maker(kind);
        for (int trial = 0; trial < 6; trial++) {
            int d = 8 * (1 + r.nextInt(8));
            int group = 1 + r.nextInt(4);
            int tokens = 1 + r.nextInt(trial % 2 == 0 ? 70 : 400);
            float[] keys = TestSeeds.floats(r, tokens * d, 1);
            float[] values = TestSeeds.floats(r, tokens * d, 1);
            float[] queries = TestSeeds.floats(r, group * d, 2);
            int slots = r.nextInt(tokens + 1);
            int stride = slots + r.nextInt(5);
            List<float[]> outs = new ArrayList<>();
            for (boolean vector : new boolean[] {true, false}) {
                String where = kind + (vector ? " vector" : " scalar") + " d=" + d + " group=" + group + " tokens="
                        + tokens + " slots=" + slots + " seed=" + seed;
                try (HeadStore store = make.apply(d, vector)) {
                    store.append(keys, 0, values, 0, d, tokens);
                    GroupAttention st =
                            new GroupAttention(group, d, vector ? AttentionKernels.get() : AttentionKernels.scalar());
                    st.begin(queries, 0, 1f);
                    float[] out = new float[group * stride];
                    KeyScoring scoring = (KeyScoring) store;
                    scoring.scoreKeys(st, slots, out, stride);
                    Codecs.checkKeyScores(store, d, queries, group, slots, out, stride, where);
                    outs.add(out);
                    assertThrows(IllegalArgumentException.class, () -> scoring.scoreKeys(st, tokens + 1, out, stride));
                    assertThrows(IllegalArgumentException.class, () -> scoring.scoreKeys(st, -1, out, stride));
                    GroupAttention wrongDim = new GroupAttention(group, d + 1);
                    assertThrows(IllegalArgumentException.class, () -> scoring.scoreKeys(wrongDim, slots, out, stride));
                    store.close();
                    assertThrows(IllegalStateException.class, () -> scoring.scoreKeys(st, slots, out, stride));
                }
            }
            // The 1-bit kernels agree to the bit on the packed groups (the residual and the exact pages
            // go through kv-api's attention kernels, whose twins are judged against float64 above).
            if (kind.startsWith("1bit")) {
                int packed = tokens / OneBitConfig.DEFAULT_GROUP_TOKENS * OneBitConfig.DEFAULT_GROUP_TOKENS;
                for (int h = 0; h < group; h++) {
                    for (int j = 0; j < Math.min(slots, packed); j++) {
                        assertEquals(
                                Float.floatToRawIntBits(outs.get(0)[h * stride + j]),
                                Float.floatToRawIntBits(outs.get(1)[h * stride + j]),
                                kind + ": kernels differ at head " + h + " slot " + j + " seed=" + seed);
                    }
                }
            }
        }
        assertEquals(live, NativeMemory.liveBytes(), "native bytes left after close, seed=" + seed);
    }
}
