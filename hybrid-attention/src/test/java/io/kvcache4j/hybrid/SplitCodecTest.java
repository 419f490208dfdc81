package io.kvcache4j.hybrid;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStores;
import io.kvcache4j.store.NativeMemory;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The split kinds with their slow side kept as codes ({@code retrieval+int8}, {@code retrieval+int4},
 * {@code hgca+int8}, {@code hgca+int4}, found by name): close to exact attention when a few keys
 * dominate, fewer bytes than the same split in f16, and every byte freed on close.
 */
class SplitCodecTest {
    static final ModelShape SHAPE = new ModelShape(2, 8, 2, 32);

    @ParameterizedTest
    @CsvSource({
        "retrieval+int8, 0.01, 0.62",
        "retrieval+int4, 0.12, 0.62",
        "hgca+int8, 0.01, 0.62",
        "hgca+int4, 0.12, 0.62"
    })
    void codesInTheSlowTierStayCloseAndHoldFewerBytes(String kind, double maxError, double maxByteShare) {
        long seed = TestSeeds.seed("split-codec-" + kind);
        SplittableRandom r = TestSeeds.random(seed);
        long before = NativeMemory.liveBytes();
        int prompt = 600;
        Budget fastTier = Budget.tokens(24, 4, 16);
        HeadStoreFactory codec = HeadStores.provider(kind).factory(16, fastTier, prompt);
        assertEquals(kind, codec.name());
        HeadStoreFactory plain =
                HeadStores.provider(kind.substring(0, kind.indexOf('+'))).factory(16, fastTier, prompt);
        try (KvCache exact = KvCache.builder(SHAPE).dtype(KvDType.F16).build();
                KvCache f16 = KvCache.builder(SHAPE).store(plain).build();
                KvCache coded = KvCache.builder(SHAPE).store(codec).build()) {
            float[][] dir = new float[SHAPE.kvHeads()][SHAPE.headDim()];
            for (float[] d : dir) {
                double norm = 0;
                for (int i = 0; i < d.length; i++) {
                    d[i] = (float) (r.nextDouble() * 2 - 1);
                    norm += d[i] * (double) d[i];
                }
                double scale = Math.sqrt(d.length / 3.0 / norm);
                for (int i = 0; i < d.length; i++) {
                    d[i] = (float) (d[i] * scale);
                }
            }
            for (int l = 0; l < SHAPE.layers(); l++) {
                float[] k = TestSeeds.floats(r, prompt * SHAPE.kvRowFloats(), 0.3f);
                float[] v = TestSeeds.floats(r, prompt * SHAPE.kvRowFloats(), 1f);
                for (int p = 0; p < 8; p++) {
                    int t = 50 + 60 * p + r.nextInt(50);
                    for (int h = 0; h < SHAPE.kvHeads(); h++) {
                        for (int i = 0; i < SHAPE.headDim(); i++) {
                            k[t * SHAPE.kvRowFloats() + h * SHAPE.headDim() + i] = 2.5f * dir[h][i];
                        }
                    }
                }
                float[] q = TestSeeds.floats(r, prompt * SHAPE.queryRowFloats(), 0.3f);
                for (KvCache c : new KvCache[] {exact, f16, coded}) {
                    c.append(l, k, 0, v, 0, prompt);
                    c.attend(l, q, 0, prompt, new float[q.length], 0);
                }
            }
            double relSum = 0;
            int n = 0;
            for (int s = 0; s < 10; s++) {
                for (int l = 0; l < SHAPE.layers(); l++) {
                    float[] k = TestSeeds.floats(r, SHAPE.kvRowFloats(), 0.3f);
                    float[] v = TestSeeds.floats(r, SHAPE.kvRowFloats(), 1f);
                    float[] q = new float[SHAPE.queryRowFloats()];
                    for (int qh = 0; qh < SHAPE.queryHeads(); qh++) {
                        int h = qh / SHAPE.groupSize();
                        for (int i = 0; i < SHAPE.headDim(); i++) {
                            q[qh * SHAPE.headDim() + i] = 2.5f * dir[h][i] + (float) (r.nextDouble() - 0.5) * 0.2f;
                        }
                    }
                    float[] a = new float[q.length];
                    float[] b = new float[q.length];
                    for (KvCache c : new KvCache[] {exact, f16, coded}) {
                        c.append(l, k, 0, v, 0, 1);
                    }
                    exact.attend(l, q, 0, 1, a, 0);
                    f16.attend(l, q, 0, 1, new float[q.length], 0);
                    coded.attend(l, q, 0, 1, b, 0);
                    double num = 0;
                    double den = 0;
                    for (int i = 0; i < a.length; i++) {
                        num += (a[i] - b[i]) * (double) (a[i] - b[i]);
                        den += a[i] * (double) a[i];
                    }
                    relSum += Math.sqrt(num / den);
                    n++;
                }
            }
            double rel = relSum / n;
            double share = (double) coded.bytesHeld() / f16.bytesHeld();
            System.out.printf(
                    "[%s] mean relative L2 error against exact attention %.3g; bytes %d = %.3f of the f16 split's %d%n",
                    kind, rel, coded.bytesHeld(), share, f16.bytesHeld());
            assertTrue(rel < maxError, "mean relative error " + rel + " seed=" + seed);
            assertTrue(share < maxByteShare, "bytes " + share + " of the f16 split");
        }
        assertEquals(before, NativeMemory.liveBytes(), "every byte freed on close");
    }
}
