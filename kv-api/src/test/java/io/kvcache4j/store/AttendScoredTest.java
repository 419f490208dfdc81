package io.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@link PagedHeadStore#attendScored} with the logits of {@link PagedHeadStore#scoreKeys} gives the
 * bits of {@link PagedHeadStore#attend} for the same state: for the whole group and for each query
 * head alone, on list and range selections, in every storage type, on the active kernel and the
 * scalar twin.
 */
class AttendScoredTest {

    @Test
    void scoredAttentionHasTheBitsOfAttention() {
        long seed = TestSeeds.seed("attend-scored");
        SplittableRandom r = TestSeeds.random(seed);
        long live = NativeMemory.liveBytes();
        for (AttentionKernel kernel : new AttentionKernel[] {AttentionKernels.get(), AttentionKernels.scalar()}) {
            for (int trial = 0; trial < 24; trial++) {
                KvDType type = KvDType.values()[r.nextInt(KvDType.values().length)];
                int d = 16 * (1 + r.nextInt(8)) + (r.nextInt(4) == 0 ? r.nextInt(16) : 0);
                int group = 1 + r.nextInt(8);
                int tokens = 1 + r.nextInt(trial % 2 == 0 ? 60 : 700);
                String where = kernel.name() + " " + type + " d=" + d + " group=" + group + " tokens=" + tokens
                        + " seed=" + seed;
                float[] k = TestSeeds.floats(r, tokens * d, 1);
                float[] v = TestSeeds.floats(r, tokens * d, 1);
                float[] q = TestSeeds.floats(r, group * d, 1);
                try (PagedHeadStore store = new PagedHeadStore(type, d, 16 * (1 + r.nextInt(4)), kernel)) {
                    store.append(k, 0, v, 0, d, tokens);
                    GroupAttention all = new GroupAttention(group, d, kernel);
                    all.begin(q, 0, 0.25f);
                    int stride = tokens + r.nextInt(3);
                    float[] logits = new float[group * stride];
                    store.scoreKeys(all, tokens, logits, stride);
                    int[] chosen = new int[tokens];
                    int m = 0;
                    for (int j = 0; j < tokens; j++) {
                        if (r.nextInt(4) != 0) {
                            chosen[m++] = j;
                        }
                    }
                    if (m == 0) {
                        chosen[m++] = r.nextInt(tokens);
                    }
                    int from = r.nextInt(tokens);
                    int to = from + 1 + r.nextInt(tokens - from);
                    for (boolean range : new boolean[] {false, true}) {
                        for (int h = -1; h < group; h++) {
                            int heads = h < 0 ? group : 1;
                            float[] hq = h < 0 ? all.queries() : Arrays.copyOfRange(all.queries(), h * d, (h + 1) * d);
                            float[] own = logits;
                            if (h >= 0) {
                                // a head alone scores through another path of the kernel than the group
                                // (the group's and the head's logits may differ in the last bit), so the
                                // head's own scores are what attend recomputes
                                GroupAttention one = new GroupAttention(1, d, kernel);
                                one.begin(hq, 0, 1f);
                                own = new float[stride];
                                store.scoreKeys(one, tokens, own, stride);
                            }
                            float[][] outs = new float[2][heads * d];
                            for (int pass = 0; pass < 2; pass++) {
                                SlotSelection sel = range
                                        ? new SlotSelection().range(from, to)
                                        : new SlotSelection().list(chosen, m);
                                GroupAttention st = new GroupAttention(heads, d, kernel);
                                st.begin(hq, 0, 1f);
                                if (pass == 0) {
                                    store.attend(st, sel);
                                } else {
                                    store.attendScored(st, sel, own, 0, stride);
                                }
                                st.finish(outs[pass], 0);
                            }
                            for (int i = 0; i < outs[0].length; i++) {
                                assertEquals(
                                        Float.floatToRawIntBits(outs[0][i]),
                                        Float.floatToRawIntBits(outs[1][i]),
                                        where + (range ? " range" : " list") + (h < 0 ? " group" : " head " + h)
                                                + ": attendScored differs from attend at " + i);
                            }
                        }
                    }
                    int last = chosen[m - 1];
                    SlotSelection sel = new SlotSelection().list(chosen, m);
                    assertThrows(
                            IllegalArgumentException.class,
                            () -> store.attendScored(
                                    new GroupAttention(group, d, kernel), sel, new float[last], 0, stride));
                }
            }
        }
        assertEquals(live, NativeMemory.liveBytes(), "native bytes left, seed=" + seed);
    }
}
