package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvDType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Rows whose values f16, bf16 and f32 all hold exactly (multiples of 1/8 in [-4, 4]) give the same
 * decode attention bits whichever type stores them: each type's direct kernels (read in place for
 * groups of 1, 2 and multiples of 4 in the Vector API kernel) add in the order of the widen-first
 * path. Groups 1–8, head dims on and off the vector width, 16- and 32-token pages (block pairs).
 */
class StorageTypeBitsTest {

    @ParameterizedTest
    @MethodSource("io.kvcache4j.attention.AttentionKernelTest#kernels")
    void sameValuesGiveTheSameBitsInEveryStoredType(AttentionKernel kernel) {
        long seed = TestSeeds.seed("storage-type-bits-" + kernel.name());
        SplittableRandom r = TestSeeds.random(seed);
        for (int pageTokens : new int[] {16, 32}) {
            for (int group : new int[] {1, 2, 4, 8}) {
                for (int d : new int[] {13, 16, 48, 128}) {
                    int pages = 3;
                    int tokens = pages * pageTokens - 1 - r.nextInt(GroupAttention.BLOCK);
                    float[][] keys = new float[pages * pageTokens][];
                    float[][] values = new float[pages * pageTokens][];
                    for (int j = 0; j < keys.length; j++) {
                        keys[j] = eighths(r, d);
                        values[j] = eighths(r, d);
                    }
                    float[] q = new float[group * d];
                    for (int i = 0; i < q.length; i++) {
                        q[i] = (float) r.nextGaussian();
                    }
                    float[] want = pass(kernel, KvDType.F32, keys, values, q, group, d, pageTokens, tokens);
                    for (KvDType type : KvDType.values()) {
                        float[] got = pass(kernel, type, keys, values, q, group, d, pageTokens, tokens);
                        for (int i = 0; i < want.length; i++) {
                            assertEquals(
                                    Float.floatToRawIntBits(want[i]),
                                    Float.floatToRawIntBits(got[i]),
                                    kernel.name() + " " + type + " against f32, pages of " + pageTokens + ", group "
                                            + group + ", headDim " + d + ": float " + i + " is " + got[i]
                                            + " against " + want[i] + ", seed=" + seed);
                        }
                    }
                }
            }
        }
    }

    /** Outputs then log-sum-exps of one decode pass of {@code group} heads over {@code tokens} rows. */
    private static float[] pass(
            AttentionKernel kernel,
            KvDType type,
            float[][] keys,
            float[][] values,
            float[] q,
            int group,
            int d,
            int pageTokens,
            int tokens) {
        int e = type.bytes();
        long valueOffset = (long) d * pageTokens * e;
        GroupAttention st = new GroupAttention(group, d, kernel, group);
        st.begin(q, 0, (float) (1 / Math.sqrt(d)));
        try (Arena arena = Arena.ofConfined()) {
            for (int p = 0; p * pageTokens < tokens; p++) {
                MemorySegment page = arena.allocate(2 * valueOffset, 64);
                for (int j = 0; j < pageTokens; j++) {
                    ScalarAttentionKernel.INSTANCE.encodeStrided(
                            keys[p * pageTokens + j], 0, page, (long) j * e, (long) pageTokens * e, type, d);
                    ValueChunks.encode(
                            ScalarAttentionKernel.INSTANCE,
                            values[p * pageTokens + j],
                            0,
                            page,
                            valueOffset,
                            type,
                            d,
                            j);
                }
                int rows = Math.min(pageTokens, tokens - p * pageTokens);
                kernel.scan(st, page, 0, pageTokens, valueOffset, type, 0, rows, p * pageTokens);
            }
        }
        float[] out = new float[group * d + group];
        st.finish(out, 0);
        for (int h = 0; h < group; h++) {
            out[group * d + h] = st.lse(h);
        }
        return out;
    }

    /** Multiples of 1/8 in [-4, 4]: exact in f16, bf16 and f32. */
    private static float[] eighths(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (r.nextInt(65) - 32) / 8f;
        }
        return a;
    }
}
