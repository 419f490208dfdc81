package io.kvcache4j.quantization;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStores;
import io.kvcache4j.store.NativeMemory;
import io.kvcache4j.store.SlotSelection;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The randomized Hadamard rotation: orthogonal in float64, the fast transform equals the dense
 * matrix, an outlier channel is spread out; wrapped around kv-api's exact f16 store it gives plain
 * f16 attention within binary16 rounding, also when a pass is split over several attend calls, and
 * leaves the pass's queries as they were; registration by name.
 */
class HadamardRotationTest {

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 8, 64, 128, 256})
    void theRotationIsOrthogonalAndTheFastTransformIsTheMatrix(int d) {
        long seed = TestSeeds.seed("rht-orthogonal-" + d);
        SplittableRandom r = TestSeeds.random(seed);
        HadamardRotation rot = HadamardRotation.of(d, r.nextLong());
        double[][] m = rot.matrix();
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) {
                double dot = 0;
                for (int k = 0; k < d; k++) {
                    dot += m[i][k] * m[j][k];
                }
                assertEquals(i == j ? 1.0 : 0.0, dot, 1e-12, "(R·Rᵀ)[" + i + "][" + j + "] seed=" + seed);
            }
        }
        float[] x = TestSeeds.floats(r, d, 3f);
        float[] y = x.clone();
        rot.rotate(y, 0);
        for (int i = 0; i < d; i++) {
            double e = 0;
            for (int j = 0; j < d; j++) {
                e += m[i][j] * x[j];
            }
            assertEquals(e, y[i], 1e-5 * (1 + Math.abs(e)), "(R·x)[" + i + "] seed=" + seed);
        }
        rot.unrotate(y, 0);
        for (int i = 0; i < d; i++) {
            assertEquals(x[i], y[i], 1e-5, "Rᵀ·R·x = x at " + i + " seed=" + seed);
        }
    }

    @Test
    void anOutlierChannelIsSpreadOut() {
        long seed = TestSeeds.seed("rht-outlier");
        SplittableRandom r = TestSeeds.random(seed);
        int d = 128;
        float[] x = TestSeeds.floats(r, d, 0.1f);
        x[37] = 20f;
        float before = maxAbs(x);
        HadamardRotation.of(d, r.nextLong()).rotate(x, 0);
        float after = maxAbs(x);
        // the outlier contributes 20/√128 ≈ 1.77 to every coordinate; the rest at most 0.1·√128
        assertTrue(after < before / 4, "max |x| " + before + " became " + after + " seed=" + seed);
    }

    private static float maxAbs(float[] x) {
        float m = 0;
        for (float v : x) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    @Test
    void rotatedF16AttentionEqualsPlainF16WithinRounding() {
        long seed = TestSeeds.seed("rht-f16");
        SplittableRandom r = TestSeeds.random(seed);
        ModelShape shape = new ModelShape(2, 8, 2, 64);
        int tokens = 150;
        float[] k = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 1f);
        float[] v = TestSeeds.floats(r, tokens * shape.kvRowFloats(), 1f);
        float[] q = TestSeeds.floats(r, tokens * shape.queryRowFloats(), 1f);
        float[] plain = new float[q.length];
        float[] rotated = new float[q.length];
        long liveBefore = NativeMemory.liveBytes();
        HeadStoreFactory f16 = HeadStoreFactory.exact(KvDType.F16, 16);
        try (KvCache a = KvCache.builder(shape).store(f16).build();
                KvCache b = KvCache.builder(shape)
                        .store(HadamardRotation.wrap(f16, r.nextLong()))
                        .build()) {
            assertEquals("f16+rht", b.storage());
            for (int l = 0; l < shape.layers(); l++) {
                a.append(l, k, 0, v, 0, tokens);
                b.append(l, k, 0, v, 0, tokens);
                a.attend(l, q, 0, tokens, plain, 0);
                b.attend(l, q, 0, tokens, rotated, 0);
                for (int i = 0; i < q.length; i++) {
                    // both round rows to binary16 (2⁻¹¹ relative), in different bases
                    assertEquals(plain[i], rotated[i], 2e-3, "layer " + l + " element " + i + " seed=" + seed);
                }
            }
            assertEquals(a.bytesHeld(), b.bytesHeld(), "the rotation holds no bytes of its own");
            assertEquals(a.bytesHeld() + b.bytesHeld(), NativeMemory.liveBytes() - liveBefore);
        }
        assertEquals(liveBefore, NativeMemory.liveBytes());
    }

    @Test
    void aPassSplitOverSeveralAttendCallsAndReadsRotateBack() {
        long seed = TestSeeds.seed("rht-split");
        SplittableRandom r = TestSeeds.random(seed);
        int d = 32;
        int g = 3;
        int n = 90;
        ModelShape shape = new ModelShape(1, g, 1, d);
        HeadStoreFactory f32 = HeadStoreFactory.exact(KvDType.F32, 16);
        float[] k = TestSeeds.floats(r, n * d, 1f);
        float[] v = TestSeeds.floats(r, n * d, 1f);
        float[] q = TestSeeds.floats(r, g * d, 1f);
        try (HeadStore plain = f32.create(new HeadStoreFactory.Spec(shape, 0, 0));
                HeadStore rotated =
                        HadamardRotation.wrap(f32, r.nextLong()).create(new HeadStoreFactory.Spec(shape, 0, 0))) {
            plain.append(k, 0, v, 0, d, n);
            rotated.append(k, 0, v, 0, d, n);
            GroupAttention st = new GroupAttention(g, d, AttentionKernels.get());
            float[] expected = new float[g * d];
            st.begin(q, 0, 0.2f);
            plain.attend(st, new SlotSelection().prefix(n));
            st.finish(expected, 0);
            st.begin(q, 0, 0.2f);
            float[] scaledQueries = st.queries().clone();
            rotated.attend(st, new SlotSelection().range(0, 37));
            assertArrayEquals(scaledQueries, st.queries(), "queries restored to the bit");
            rotated.attend(st, new SlotSelection().range(37, 61));
            rotated.attend(st, new SlotSelection().list(new int[] {61, 70, 75}, 3));
            long[] bits = new long[2];
            for (int s = 62; s < n; s++) {
                if (s != 70 && s != 75) {
                    bits[s >>> 6] |= 1L << s;
                }
            }
            rotated.attend(st, new SlotSelection().bitmap(bits, n));
            float[] out = new float[g * d];
            st.finish(out, 0);
            for (int i = 0; i < out.length; i++) {
                assertEquals(expected[i], out[i], 2e-5, "element " + i + " seed=" + seed);
            }
            float[] row = new float[d];
            for (int t = 0; t < n; t += 7) {
                rotated.readKey(t, row, 0);
                for (int i = 0; i < d; i++) {
                    assertEquals(k[t * d + i], row[i], 1e-5, "key " + t + " seed=" + seed);
                }
                rotated.readValue(t, row, 0);
                for (int i = 0; i < d; i++) {
                    assertEquals(v[t * d + i], row[i], 1e-5, "value " + t + " seed=" + seed);
                }
            }
            assertEquals(plain.bytesHeld(), rotated.bytesHeld());
            assertEquals(plain.granularity(), rotated.granularity());
        }
    }

    @Test
    void headDimensionsThatAreNotPowersOfTwoAreRejected() {
        var e = assertThrows(IllegalArgumentException.class, () -> HadamardRotation.of(24, 1));
        assertEquals("headDim must be a power of two for the Walsh-Hadamard rotation, was 24", e.getMessage());
        HeadStoreFactory f = HadamardRotation.wrap(HeadStoreFactory.exact(KvDType.F16, 16), 1);
        e = assertThrows(
                IllegalArgumentException.class,
                () -> f.create(new HeadStoreFactory.Spec(new ModelShape(1, 1, 1, 96), 0, 0)));
        assertEquals("headDim must be a power of two for the Walsh-Hadamard rotation, was 96", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new RotatedProvider("1bit+rht"));
    }

    @Test
    void storagesAreRegisteredByName() {
        List<String> names = HeadStores.names();
        for (String name : List.of(
                "int8",
                "int4",
                "int2",
                "int8+rht",
                "int4+rht",
                "int2+rht",
                "1bit",
                "1bit-quantile",
                "1bit+rht",
                "1bit-quantile+rht",
                "f16+rht")) {
            assertTrue(names.contains(name), name + " installed: " + names);
            assertEquals(name, HeadStores.factory(name, 16).name());
        }
        RotatedProvider bf16 = new RotatedProvider("bf16");
        assertEquals("bf16+rht", bf16.name());
        assertEquals("bf16+rht", bf16.factory(16).name());
        assertTrue(HeadStores.provider("f16+rht").description().contains("Hadamard"));
        try (KvCache cache = KvCache.builder(new ModelShape(1, 2, 1, 16))
                .store(HeadStores.factory("1bit+rht", 16))
                .build()) {
            cache.append(0, new float[16 * 70], 0, new float[16 * 70], 0, 70);
            assertEquals(OneBitHeadStore.groupBytes(16, 64) + OneBitHeadStore.residualBytes(16, 64), cache.bytesHeld());
        }
    }
}
