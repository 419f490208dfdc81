package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ScoreAggregation;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A {@link AttentionKernel#scan} over a page of several key blocks has the bits of one scan per
 * block: outputs, log-sum-exps and recorded logits (through their mass). The Vector API kernel
 * scores two blocks of a page in one pass for f16, f32 and bf16 groups of four and eight heads; this holds it to the
 * single-block steps for every type, groups 1–8, prefill units of 1 and 2 rows, pages of 32–80
 * tokens (pairs, and a last block alone or partial), head dims on and off the vector width.
 */
class ScanBlockPairsTest {
    static final int BLOCK = GroupAttention.BLOCK;

    @ParameterizedTest
    @MethodSource("io.kvcache4j.attention.AttentionKernelTest#kernelsAndTypes")
    void aPageHasTheBitsOfItsBlocksOneByOne(AttentionKernel kernel, KvDType type) {
        long seed = TestSeeds.seed("block-pairs-" + kernel.name() + "-" + type);
        SplittableRandom r = TestSeeds.random(seed);
        int e = type.bytes();
        for (int pageTokens : new int[] {32, 48, 64, 80}) {
            for (int group : new int[] {1, 2, 4, 8}) {
                for (int unit : new int[] {group, 1, 2}) {
                    if (unit > group || group % unit != 0) {
                        continue;
                    }
                    for (int d : new int[] {13, 16, 48, 128}) {
                        long valueOffset = (long) d * pageTokens * e;
                        int pages = 3;
                        int lastRows = pageTokens - 1 - r.nextInt(BLOCK);
                        int tokens = (pages - 1) * pageTokens + lastRows;
                        try (Arena arena = Arena.ofConfined()) {
                            MemorySegment[] page = new MemorySegment[pages];
                            float[] row = new float[d];
                            for (int p = 0; p < pages; p++) {
                                page[p] = arena.allocate(2 * valueOffset, 64);
                                for (int j = 0; j < pageTokens; j++) {
                                    fill(r, row, 3f);
                                    ScalarAttentionKernel.INSTANCE.encodeStrided(
                                            row, 0, page[p], (long) j * e, (long) pageTokens * e, type, d);
                                    fill(r, row, 2f);
                                    ValueChunks.encode(
                                            ScalarAttentionKernel.INSTANCE, row, 0, page[p], valueOffset, type, d, j);
                                }
                            }
                            float[] q = new float[group * d];
                            fill(r, q, 2f);
                            float[] whole =
                                    pass(kernel, page, pageTokens, q, group, d, unit, type, valueOffset, tokens, false);
                            float[] blocks =
                                    pass(kernel, page, pageTokens, q, group, d, unit, type, valueOffset, tokens, true);
                            for (int i = 0; i < whole.length; i++) {
                                assertEquals(
                                        Float.floatToRawIntBits(blocks[i]),
                                        Float.floatToRawIntBits(whole[i]),
                                        kernel.name() + " " + type + " pages of " + pageTokens + ", group " + group
                                                + " unit " + unit + " headDim " + d + ": float " + i + " of "
                                                + whole.length + " is " + whole[i] + " from whole pages, " + blocks[i]
                                                + " block by block, seed=" + seed);
                            }
                        }
                    }
                }
            }
        }
    }

    /** Every page in one scan, or block by block (scans of at most {@code BLOCK} rows). */
    private static float[] pass(
            AttentionKernel kernel,
            MemorySegment[] page,
            int pageTokens,
            float[] q,
            int group,
            int d,
            int unit,
            KvDType type,
            long valueOffset,
            int tokens,
            boolean byBlock) {
        GroupAttention st = new GroupAttention(group, d, kernel, unit);
        st.begin(q, 0, (float) (1 / Math.sqrt(d)));
        st.recordLogits(tokens);
        for (int p = 0; p < page.length; p++) {
            int rows = Math.min(pageTokens, tokens - p * pageTokens);
            if (!byBlock) {
                kernel.scan(st, page[p], 0, pageTokens, valueOffset, type, 0, rows, p * pageTokens);
                continue;
            }
            for (int r0 = 0; r0 < rows; r0 += BLOCK) {
                kernel.scan(
                        st,
                        page[p],
                        0,
                        pageTokens,
                        valueOffset,
                        type,
                        r0,
                        Math.min(BLOCK, rows - r0),
                        p * pageTokens + r0);
            }
        }
        float[] out = new float[group * d + group + tokens];
        st.finish(out, 0);
        for (int h = 0; h < group; h++) {
            out[group * d + h] = st.lse(h);
        }
        float[] mass = new float[tokens];
        kernel.mass(st, tokens, ScoreAggregation.MEAN, mass);
        System.arraycopy(mass, 0, out, group * d + group, tokens);
        return out;
    }

    private static void fill(SplittableRandom r, float[] a, float scale) {
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (r.nextGaussian() * scale);
        }
    }
}
