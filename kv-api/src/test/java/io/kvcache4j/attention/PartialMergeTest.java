package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Merging the partials of a split key range equals attention over the whole range. */
class PartialMergeTest {

    @Test
    void anySplitMergesToTheUnsplitResult() {
        long seed = TestSeeds.seed("merge-split");
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(1, 8, 2, 64);
        for (int trial = 0; trial < 40; trial++) {
            int tokens = 1 + r.nextInt(400);
            int parts = 1 + r.nextInt(Math.min(tokens, 6));
            int[] cuts = cuts(r, tokens, parts);
            float[] k = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 2f);
            float[] v = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 2f);
            float[] q = TestSeeds.floats(r, shape.queryRowFloats(), 2f);
            Partial whole = new Partial(shape.queryHeads(), shape.headDim());
            try (KvCache all = KvCache.builder(shape).dtype(KvDType.F32).build()) {
                all.append(0, k, 0, v, 0, tokens);
                float[] ignored = new float[tokens * shape.queryRowFloats()];
                if (tokens > 1) {
                    all.attend(0, new float[(tokens - 1) * shape.queryRowFloats()], 0, tokens - 1, ignored, 0);
                }
                all.attendPartial(0, q, 0, whole);
            }
            Partial[] partials = new Partial[parts + 1];
            for (int p = 0; p < parts; p++) {
                int from = cuts[p];
                int to = cuts[p + 1];
                partials[p] = new Partial(shape.queryHeads(), shape.headDim());
                try (KvCache piece = KvCache.builder(shape).dtype(KvDType.F32).build()) {
                    int n = to - from;
                    piece.append(0, k, from * shape.kvRowFloats(), v, from * shape.kvRowFloats(), n);
                    if (n > 1) {
                        piece.attend(
                                0,
                                new float[(n - 1) * shape.queryRowFloats()],
                                0,
                                n - 1,
                                new float[(n - 1) * shape.queryRowFloats()],
                                0);
                    }
                    piece.attendPartial(0, q, 0, partials[p]);
                }
            }
            // An empty part (lse = -inf) must not change anything.
            partials[parts] = new Partial(shape.queryHeads(), shape.headDim());
            Partial merged = new Partial(shape.queryHeads(), shape.headDim());
            Partial.merge(partials, parts + 1, merged);
            Partial pairwise = new Partial(shape.queryHeads(), shape.headDim());
            for (int p = parts; p >= 0; p--) {
                pairwise.mergeFrom(partials[p]);
            }
            for (int h = 0; h < shape.queryHeads(); h++) {
                assertEquals(
                        whole.lse()[h],
                        merged.lse()[h],
                        2e-5 * Math.max(1, Math.abs(whole.lse()[h])),
                        "lse head " + h + " seed=" + seed);
                assertEquals(
                        whole.lse()[h],
                        pairwise.lse()[h],
                        2e-5 * Math.max(1, Math.abs(whole.lse()[h])),
                        "pairwise lse head " + h + " seed=" + seed);
                for (int i = 0; i < shape.headDim(); i++) {
                    int idx = h * shape.headDim() + i;
                    assertEquals(whole.out()[idx], merged.out()[idx], 1e-5, "out " + idx + " seed=" + seed);
                    assertEquals(whole.out()[idx], pairwise.out()[idx], 1e-5, "pairwise out " + idx + " seed=" + seed);
                }
            }
        }
    }

    @Test
    void mergingOnlyEmptyPartsGivesAnEmptyPart() {
        Partial a = new Partial(2, 3);
        Partial b = new Partial(2, 3);
        Partial dst = new Partial(2, 3);
        dst.out()[0] = 7f;
        Partial.merge(new Partial[] {a, b}, 2, dst);
        assertEquals(Float.NEGATIVE_INFINITY, dst.lse()[0]);
        assertEquals(0f, dst.out()[0]);
        a.mergeFrom(b);
        assertEquals(Float.NEGATIVE_INFINITY, a.lse()[1]);
    }

    @Test
    void mismatchedShapesAreRejectedWithBothShapes() {
        var e = org.junit.jupiter.api.Assertions.assertThrows(
                IllegalArgumentException.class, () -> new Partial(2, 3).mergeFrom(new Partial(2, 4)));
        assertTrue(
                e.getMessage().contains("[2 heads x 4]") && e.getMessage().contains("[2 heads x 3]"), e.getMessage());
    }

    private static int[] cuts(SplittableRandom r, int tokens, int parts) {
        java.util.TreeSet<Integer> set = new java.util.TreeSet<>();
        while (set.size() < parts - 1) {
            set.add(1 + r.nextInt(tokens - 1));
        }
        int[] c = new int[parts + 1];
        int i = 1;
        for (int x : set) {
            c[i++] = x;
        }
        c[parts] = tokens;
        return c;
    }
}
