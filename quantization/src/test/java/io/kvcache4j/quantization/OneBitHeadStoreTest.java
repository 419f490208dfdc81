package io.kvcache4j.quantization;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.ScoreAggregation;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.NativeMemory;
import io.kvcache4j.store.SlotSelection;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The 1-bit store against {@link OneBitReference}: reproduced rows exactly, attention (outputs,
 * log-sum-exps, per-key mass) within float rounding of float64 attention over the reproduced rows,
 * for both kernel twins, both level modes, range, bitmap and list selections, several groups; exact
 * bytes, compaction by whole groups, release of all memory, parameter validation, and bit-identical
 * results from the Vector API kernel over repeated calls.
 */
class OneBitHeadStoreTest {

    private static OneBitKernel kernel(boolean panama) {
        return panama ? new OneBitPanamaKernel() : OneBitKernels.scalar();
    }

    private static AttentionKernel residualKernel(boolean panama) {
        return panama ? AttentionKernels.get() : AttentionKernels.scalar();
    }

    /** Keys with per-channel offsets and spreads (and one outlier channel), values plainer. */
    private static float[] rows(SplittableRandom r, int n, int d, boolean keys) {
        float[] offset = new float[d];
        float[] spread = new float[d];
        for (int c = 0; c < d; c++) {
            offset[c] = keys ? (float) (r.nextDouble() * 2 - 1) : 0f;
            spread[c] = (float) (0.2 + r.nextDouble() * (keys && c == d / 2 ? 8 : 1));
        }
        float[] x = new float[n * d];
        for (int t = 0; t < n; t++) {
            for (int c = 0; c < d; c++) {
                x[t * d + c] = offset[c] + spread[c] * (float) (r.nextDouble() * 2 - 1);
            }
        }
        return x;
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void attentionMatchesFloat64OverTheReproducedRows(boolean panama) {
        long seed = TestSeeds.seed("onebit-differential-" + (panama ? "panama" : "scalar"));
        SplittableRandom r = TestSeeds.random(seed);
        long liveBefore = NativeMemory.liveBytes();
        int[] dims = {8, 12, 24, 37, 64, 128};
        for (int sc = 0; sc < 24; sc++) {
            int d = dims[r.nextInt(dims.length)];
            int heads = 1 + r.nextInt(6);
            int gt = 16 * (1 + r.nextInt(4));
            OneBitConfig config = r.nextBoolean()
                    ? OneBitConfig.group(gt, 0.3f + 0.7f * (float) r.nextDouble(), 0.3f + 0.7f * (float) r.nextDouble())
                    : OneBitConfig.quantile(
                            gt, 0.1f + 0.2f * (float) r.nextDouble(), 0.7f + 0.2f * (float) r.nextDouble());
            int n = 1 + r.nextInt(5 * gt);
            String where =
                    "scenario " + sc + " d=" + d + " heads=" + heads + " " + config + " n=" + n + " seed=" + seed;
            float[] k = rows(r, n, d, true);
            float[] v = rows(r, n, d, false);
            try (OneBitHeadStore store = new OneBitHeadStore(config, d, kernel(panama), residualKernel(panama))) {
                appendInChunks(r, store, k, v, n, d);
                assertEquals(n, store.count(), where);
                assertEquals(n % gt, store.residualTokens(), where);
                float[] kHat = OneBitReference.reproduce(config, k, n, d, true);
                float[] vHat = OneBitReference.reproduce(config, v, n, d, false);
                float[] row = new float[d];
                for (int t = 0; t < n; t++) {
                    store.readKey(t, row, 0);
                    assertArrayEquals(java.util.Arrays.copyOfRange(kHat, t * d, (t + 1) * d), row, where + " key " + t);
                    store.readValue(t, row, 0);
                    assertArrayEquals(
                            java.util.Arrays.copyOfRange(vHat, t * d, (t + 1) * d), row, where + " value " + t);
                }
                GroupAttention st = new GroupAttention(heads, d, residualKernel(panama));
                for (int kind = 0; kind < 3; kind++) {
                    SlotSelection sel = new SlotSelection();
                    int[] slots = select(r, sel, kind, n);
                    float[] q = TestSeeds.floats(r, heads * d, 1f);
                    check(store, st, sel, slots, q, kHat, vHat, heads, d, where + " selection " + sel.kind());
                }
            }
        }
        assertEquals(liveBefore, NativeMemory.liveBytes(), "every block freed, seed=" + seed);
    }

    private static void appendInChunks(SplittableRandom r, OneBitHeadStore store, float[] k, float[] v, int n, int d) {
        for (int done = 0; done < n; ) {
            int m = Math.min(n - done, 1 + r.nextInt(40));
            // rows with a stride wider than d, as the cache passes one KV head of a multi-head row
            int stride = d + r.nextInt(3) * 8;
            float[] ks = new float[m * stride];
            float[] vs = new float[m * stride];
            for (int t = 0; t < m; t++) {
                System.arraycopy(k, (done + t) * d, ks, t * stride, d);
                System.arraycopy(v, (done + t) * d, vs, t * stride, d);
            }
            store.append(ks, 0, vs, 0, stride, m);
            done += m;
        }
    }

    /** Configures {@code sel} as a random range (kind 0), bitmap (1) or list (2) over {@code n} slots. */
    private static int[] select(SplittableRandom r, SlotSelection sel, int kind, int n) {
        List<Integer> chosen = new ArrayList<>();
        switch (kind) {
            case 0 -> {
                int from = r.nextInt(n);
                int to = from + 1 + r.nextInt(n - from);
                sel.range(from, to);
                for (int s = from; s < to; s++) {
                    chosen.add(s);
                }
            }
            case 1 -> {
                long[] bits = new long[(n + 63) / 64];
                double p = r.nextDouble();
                for (int s = 0; s < n; s++) {
                    if (r.nextDouble() < p || s == n - 1) {
                        bits[s >>> 6] |= 1L << s;
                        chosen.add(s);
                    }
                }
                sel.bitmap(bits, n);
            }
            default -> {
                double p = r.nextDouble();
                for (int s = 0; s < n; s++) {
                    if (r.nextDouble() < p || s == 0) {
                        chosen.add(s);
                    }
                }
                int[] list = chosen.stream().mapToInt(Integer::intValue).toArray();
                sel.list(list, list.length);
            }
        }
        return chosen.stream().mapToInt(Integer::intValue).toArray();
    }

    private static void check(
            OneBitHeadStore store,
            GroupAttention st,
            SlotSelection sel,
            int[] slots,
            float[] q,
            float[] kHat,
            float[] vHat,
            int heads,
            int d,
            String where) {
        float scale = (float) (1 / Math.sqrt(d));
        st.begin(q, 0, scale);
        st.recordLogits(slots.length);
        store.attend(st, sel);
        float[] out = new float[heads * d];
        st.finish(out, 0);
        float[] mass = new float[slots.length];
        st.kernel().mass(st, slots.length, ScoreAggregation.SUM, mass);
        double[] ref = new double[heads * d];
        double[] lse = new double[heads];
        double[] refMass = new double[slots.length];
        OneBitReference.attend(st.queries(), heads, d, kHat, vHat, slots, ref, lse, refMass);
        double vMax = 0;
        for (float x : vHat) {
            vMax = Math.max(vMax, Math.abs(x));
        }
        for (int i = 0; i < out.length; i++) {
            assertEquals(ref[i], out[i], 2e-5 * (1 + vMax), where + " output " + i);
        }
        for (int h = 0; h < heads; h++) {
            assertEquals(lse[h], st.lse(h), 2e-4 * (1 + Math.abs(lse[h])), where + " lse " + h);
        }
        for (int j = 0; j < slots.length; j++) {
            assertEquals(refMass[j], mass[j], 2e-5, where + " mass of ordinal " + j);
        }
    }

    @Test
    void scalarAndPanamaKernelsAgreeToTheBitOnPackedGroups() {
        long seed = TestSeeds.seed("onebit-twins");
        SplittableRandom r = TestSeeds.random(seed);
        for (int sc = 0; sc < 12; sc++) {
            int d = new int[] {8, 12, 24, 37, 64, 128}[sc % 6];
            int heads = 1 + r.nextInt(6);
            OneBitConfig config = OneBitConfig.group(32, 0.5f, 0.3f);
            int n = 32 * (1 + r.nextInt(6));
            float[] k = rows(r, n, d, true);
            float[] v = rows(r, n, d, false);
            float[] q = TestSeeds.floats(r, heads * d, 1f);
            float[][] outs = new float[2][heads * d];
            for (int twin = 0; twin < 2; twin++) {
                boolean panama = twin == 1;
                try (OneBitHeadStore store = new OneBitHeadStore(config, d, kernel(panama), residualKernel(panama))) {
                    store.append(k, 0, v, 0, d, n);
                    GroupAttention st = new GroupAttention(heads, d, residualKernel(panama));
                    st.begin(q, 0, 0.125f);
                    store.attend(st, new SlotSelection().prefix(n));
                    st.finish(outs[twin], 0);
                }
            }
            assertArrayEquals(outs[0], outs[1], "scenario " + sc + " d=" + d + " heads=" + heads + " seed=" + seed);
        }
    }

    /**
     * The key kernels alone on random codes: {@code β} and the table lookups against the float64 sum
     * {@code Σ_c q_c·(lo_c + bit·s_c)}, and the twins to the bit (tables, {@code β}, logits), for
     * widths that fill no octet or quad exactly and head counts on both sides of four.
     */
    @Test
    void keyTablesMatchFloat64AndTwinsAgreeToTheBit() {
        long seed = TestSeeds.seed("onebit-key-tables");
        SplittableRandom r = TestSeeds.random(seed);
        int block = GroupAttention.BLOCK;
        for (int d : new int[] {1, 3, 8, 12, 37, 64, 128}) {
            for (int heads = 1; heads <= 6; heads++) {
                String where = "d=" + d + " heads=" + heads + " seed=" + seed;
                int octets = OneBitKernel.octets(d);
                float[] q = TestSeeds.floats(r, heads * d, 2f);
                float[] lo = TestSeeds.floats(r, d, 1f);
                float[] scale = new float[d];
                for (int c = 0; c < d; c++) {
                    scale[c] = (float) (0.05 + 3 * r.nextDouble());
                }
                boolean[][] bits = new boolean[block][d];
                java.lang.foreign.MemorySegment codes =
                        java.lang.foreign.MemorySegment.ofArray(new byte[8 + 16 * octets]);
                for (int j = 0; j < block; j++) {
                    for (int c = 0; c < d; c++) {
                        bits[j][c] = r.nextBoolean();
                        if (bits[j][c]) {
                            long at = 8 + 16L * (c >>> 3) + j;
                            codes.set(java.lang.foreign.ValueLayout.JAVA_BYTE, at, (byte)
                                    (codes.get(java.lang.foreign.ValueLayout.JAVA_BYTE, at) | 1 << (c & 7)));
                        }
                    }
                }
                int stride = block + 3;
                float[][] tables = new float[2][OneBitKernel.tableFloats(d, heads)];
                float[][] beta = new float[2][heads];
                float[][] out = new float[2][2 + heads * stride];
                for (int twin = 0; twin < 2; twin++) {
                    OneBitKernel kernel = kernel(twin == 1);
                    kernel.foldKeys(q, lo, scale, d, heads, beta[twin], tables[twin]);
                    kernel.keyLogits(codes, 8, d, tables[twin], beta[twin], heads, out[twin], 2, stride);
                }
                for (int i = 0; i < heads * octets * 32; i++) { // the scratch tail may differ
                    assertEquals(
                            Float.floatToRawIntBits(tables[0][i]),
                            Float.floatToRawIntBits(tables[1][i]),
                            "table float " + i + " " + where);
                }
                for (int h = 0; h < heads; h++) {
                    assertEquals(Float.floatToRawIntBits(beta[0][h]), Float.floatToRawIntBits(beta[1][h]), where);
                    for (int j = 0; j < block; j++) {
                        int at = 2 + h * stride + j;
                        assertEquals(
                                Float.floatToRawIntBits(out[0][at]),
                                Float.floatToRawIntBits(out[1][at]),
                                "head " + h + " key " + j + " " + where);
                        double exact = 0;
                        double magnitude = 0;
                        for (int c = 0; c < d; c++) {
                            double term = (double) q[h * d + c] * (lo[c] + (bits[j][c] ? (double) scale[c] : 0));
                            exact += term;
                            magnitude += Math.abs((double) q[h * d + c]) * (Math.abs(lo[c]) + scale[c]);
                        }
                        double tol = 4 * d * Math.ulp(1f) * magnitude;
                        assertTrue(
                                Math.abs(out[0][at] - exact) <= tol,
                                "head " + h + " key " + j + ": " + out[0][at] + " vs float64 " + exact + " " + where);
                    }
                }
            }
        }
    }

    @Test
    void panamaKernelGivesTheSameBitsOnRepeatedCalls() {
        long seed = TestSeeds.seed("onebit-repeat");
        SplittableRandom r = TestSeeds.random(seed);
        int d = 128;
        int heads = 4;
        int n = 64 * 5 + 17;
        float[] k = rows(r, n, d, true);
        float[] v = rows(r, n, d, false);
        float[] q = TestSeeds.floats(r, heads * d, 1f);
        try (OneBitHeadStore store =
                new OneBitHeadStore(OneBitConfig.group(), d, new OneBitPanamaKernel(), AttentionKernels.get())) {
            store.append(k, 0, v, 0, d, n);
            GroupAttention st = new GroupAttention(heads, d);
            SlotSelection sel = new SlotSelection().prefix(n);
            float[] first = new float[heads * d];
            float[] again = new float[heads * d];
            st.begin(q, 0, 0.09f);
            store.attend(st, sel);
            st.finish(first, 0);
            for (int call = 0; call < 3000; call++) {
                st.begin(q, 0, 0.09f);
                store.attend(st, sel);
                st.finish(again, 0);
                for (int i = 0; i < first.length; i++) {
                    if (Float.floatToRawIntBits(first[i]) != Float.floatToRawIntBits(again[i])) {
                        throw new AssertionError("call " + call + " element " + i + ": " + again[i] + " != " + first[i]
                                + " seed=" + seed);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {8, 24, 128})
    void bytesAreExactAndEverythingIsFreed(int d) {
        long seed = TestSeeds.seed("onebit-bytes-" + d);
        SplittableRandom r = TestSeeds.random(seed);
        int g = 32;
        long group = align((long) g * d / 8 + (long) g * ((d + 7) / 8) + 8L * d);
        long residual = align(4L * g * d);
        assertEquals(group, OneBitHeadStore.groupBytes(d, g));
        long liveBefore = NativeMemory.liveBytes();
        OneBitHeadStore store =
                new OneBitHeadStore(OneBitConfig.group(g, 0.5f, 0.3f), d, OneBitKernels.get(), AttentionKernels.get());
        assertEquals(0, store.bytesHeld());
        int n = 0;
        for (int step = 0; step < 40; step++) {
            int m = 1 + r.nextInt(12);
            store.append(rows(r, m, d, true), 0, rows(r, m, d, false), 0, d, m);
            n += m;
            long expected = (n / g) * group + (n % g != 0 ? residual : 0);
            assertEquals(expected, store.bytesHeld(), n + " tokens, seed=" + seed);
            assertEquals(expected, NativeMemory.liveBytes() - liveBefore, "live native bytes, seed=" + seed);
        }
        store.close();
        store.close();
        assertEquals(0, store.bytesHeld());
        assertEquals(liveBefore, NativeMemory.liveBytes(), "close frees everything");
        assertThrows(IllegalStateException.class, () -> store.append(new float[d], 0, new float[d], 0, d, 1));
    }

    private static long align(long bytes) {
        return (bytes + 63) & -64L;
    }

    @Test
    void compactionMovesWholeGroupsAndFreesTheRemovedOnes() {
        long seed = TestSeeds.seed("onebit-compact");
        SplittableRandom r = TestSeeds.random(seed);
        int d = 64;
        int g = 16;
        int n = 5 * g + 7;
        float[] k = rows(r, n, d, true);
        float[] v = rows(r, n, d, false);
        long liveBefore = NativeMemory.liveBytes();
        try (OneBitHeadStore store = new OneBitHeadStore(
                OneBitConfig.quantile(g, 0.2f, 0.8f), d, OneBitKernels.get(), AttentionKernels.get())) {
            store.append(k, 0, v, 0, d, n);
            float[][] keys = new float[n][d];
            float[][] values = new float[n][d];
            for (int t = 0; t < n; t++) {
                store.readKey(t, keys[t], 0);
                store.readValue(t, values[t], 0);
            }
            // keep group 0, drop groups 1 and 3, move groups 2 and 4 and the incomplete tail down
            int[] sources = new int[2 * g + 7];
            for (int j = 0; j < g; j++) {
                sources[j] = 2 * g + j;
                sources[g + j] = 4 * g + j;
            }
            for (int j = 0; j < 7; j++) {
                sources[2 * g + j] = 5 * g + j;
            }
            store.compact(g, sources, sources.length, 3 * g + 7);
            assertEquals(3 * g + 7, store.count());
            assertEquals(3 * OneBitHeadStore.groupBytes(d, g) + OneBitHeadStore.residualBytes(d, g), store.bytesHeld());
            assertEquals(store.bytesHeld(), NativeMemory.liveBytes() - liveBefore, "removed groups freed");
            int[] origin = new int[3 * g + 7];
            for (int t = 0; t < g; t++) {
                origin[t] = t;
            }
            System.arraycopy(sources, 0, origin, g, sources.length);
            float[] row = new float[d];
            for (int t = 0; t < origin.length; t++) {
                store.readKey(t, row, 0);
                assertArrayEquals(keys[origin[t]], row, "key " + t + " seed=" + seed);
                store.readValue(t, row, 0);
                assertArrayEquals(values[origin[t]], row, "value " + t + " seed=" + seed);
            }
            var e = assertThrows(IllegalArgumentException.class, () -> store.compact(3, new int[0], 0, 3 * g + 7 - g));
            assertTrue(e.getMessage().contains("whole groups of " + g), e.getMessage());
        }
        assertEquals(liveBefore, NativeMemory.liveBytes());
    }

    @Test
    void badParametersAreRejectedNamingValueAndRange() {
        var e = assertThrows(IllegalArgumentException.class, () -> OneBitConfig.group(24, 0.5f, 0.3f));
        assertEquals("groupTokens must be a multiple of 16 in [16, 4096], was 24", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OneBitConfig.group(8192, 0.5f, 0.3f));
        assertEquals("groupTokens must be a multiple of 16 in [16, 4096], was 8192", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OneBitConfig.group(32, 0f, 0.3f));
        assertEquals("keyClip must be in (0, 1], was 0.0", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OneBitConfig.group(32, 0.5f, 1.5f));
        assertEquals("valueClip must be in (0, 1], was 1.5", e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> OneBitConfig.quantile(32, 0.8f, 0.2f));
        assertEquals("quantiles must satisfy 0 <= low < high <= 1, were low 0.8 and high 0.2", e.getMessage());
        e = assertThrows(
                IllegalArgumentException.class,
                () -> new OneBitHeadStore(OneBitConfig.group(), 0, OneBitKernels.scalar(), AttentionKernels.scalar()));
        assertEquals("headDim must be >= 1, was 0", e.getMessage());
        try (OneBitHeadStore store =
                new OneBitHeadStore(OneBitConfig.group(), 8, OneBitKernels.scalar(), AttentionKernels.scalar())) {
            store.append(new float[8], 0, new float[8], 0, 8, 1);
            var s = assertThrows(
                    IllegalArgumentException.class,
                    () -> store.attend(new GroupAttention(1, 8), new SlotSelection().prefix(2)));
            assertEquals("selection reaches slot 1 but the store holds 1", s.getMessage());
            var i = assertThrows(IndexOutOfBoundsException.class, () -> store.readKey(1, new float[8], 0));
            assertEquals("slot 1 out of range [0, 1)", i.getMessage());
        }
    }

    @Test
    void defaultsAreDocumentedValues() {
        OneBitConfig g = OneBitConfig.group();
        assertEquals(new OneBitConfig(OneBitConfig.Mode.GROUP, 64, 0.5f, 0.3f, 0.2f, 0.8f), g);
        assertEquals("1bit", g.storageName());
        assertEquals("1bit-quantile", OneBitConfig.quantile().storageName());
        assertEquals(64, OneBitConfig.quantile().groupTokens());
    }
}
