package io.kvcache4j.quantization;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.quantization.Codecs.Codec;
import io.kvcache4j.quantization.Codecs.Family;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.NativeMemory;
import io.kvcache4j.store.SlotSelection;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The codecs as stores: attention on the packed codes against a float64 reference that attends
 * over the dequantized rows, for both kernel families and every kind of selection; the quantization
 * error; compaction; exact byte accounting; release on close.
 */
class QuantizedStoreTest {

    static List<Codec> codecs() {
        return Codecs.codecs();
    }

    /** Keys with per-channel offsets (KIVI's outlier channels) and values, both random. */
    static float[][] data(SplittableRandom r, int tokens, int d) {
        float[] offsets = TestSeeds.floats(r, d, 4);
        float[] k = new float[tokens * d];
        float[] v = TestSeeds.floats(r, tokens * d, 1 + r.nextInt(3));
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < d; i++) {
                k[t * d + i] = offsets[i] + (float) ((r.nextDouble() * 2 - 1) * 1.5);
            }
        }
        return new float[][] {k, v};
    }

    static int headDim(SplittableRandom r, Codec codec) {
        int[] dims = codec.kivi() == null ? new int[] {8, 20, 32, 64} : new int[] {8, 16, 24, 32, 64};
        while (true) {
            int d = dims[r.nextInt(dims.length)];
            if (codec.kivi() == null || d % codec.kivi().valueGroupChannels() == 0) {
                return d;
            }
        }
    }

    /** A random selection of slots below {@code count}, as a range, a bitmap or a list; returns its slots. */
    static int[] select(SplittableRandom r, int count, SlotSelection.Kind kind, SlotSelection sel) {
        switch (kind) {
            case RANGE -> {
                int from = r.nextInt(count);
                int to = from + 1 + r.nextInt(count - from);
                if (r.nextBoolean()) {
                    from = 0;
                    to = count;
                }
                sel.range(from, to);
                int[] s = new int[to - from];
                for (int i = 0; i < s.length; i++) {
                    s[i] = from + i;
                }
                return s;
            }
            default -> {
                double p = r.nextDouble();
                List<Integer> chosen = new ArrayList<>();
                for (int i = 0; i < count; i++) {
                    if (r.nextDouble() < p) {
                        chosen.add(i);
                    }
                }
                if (chosen.isEmpty()) {
                    chosen.add(r.nextInt(count));
                }
                int[] s = chosen.stream().mapToInt(Integer::intValue).toArray();
                if (kind == SlotSelection.Kind.LIST) {
                    sel.list(s, s.length);
                } else {
                    long[] words = new long[(count + 63) / 64];
                    for (int x : s) {
                        words[x >>> 6] |= 1L << (x & 63);
                    }
                    sel.bitmap(words, count);
                }
                return s;
            }
        }
    }

    @ParameterizedTest
    @MethodSource("codecs")
    void attentionOnCodesMatchesFloat64ReferenceForBothKernelsAndEverySelection(Codec codec) {
        long seed = TestSeeds.seed("attention-" + codec);
        SplittableRandom r = TestSeeds.random(seed);
        List<Family> families = Codecs.families();
        long live = NativeMemory.liveBytes();
        for (int trial = 0; trial < 12; trial++) {
            int d = headDim(r, codec);
            int group = 1 + r.nextInt(4);
            int tokens = 1 + r.nextInt(trial % 3 == 0 ? 40 : 400);
            float[][] kv = data(r, tokens, d);
            int chunk = 1 + r.nextInt(64);
            HeadStore[] stores = new HeadStore[families.size()];
            try {
                for (int f = 0; f < families.size(); f++) {
                    stores[f] = codec.create(
                            d, 16 * (1 + r.nextInt(4)), families.get(f).codec());
                    for (int t = 0; t < tokens; t += chunk) {
                        int n = Math.min(chunk, tokens - t);
                        stores[f].append(kv[0], t * d, kv[1], t * d, d, n);
                    }
                }
                float[] queries = TestSeeds.floats(r, group * d, 2);
                float scale = (float) (1 / Math.sqrt(d));
                for (SlotSelection.Kind kind : SlotSelection.Kind.values()) {
                    SlotSelection sel = new SlotSelection();
                    int[] slots = select(r, tokens, kind, sel);
                    float[][] outs = new float[families.size()][];
                    for (int f = 0; f < families.size(); f++) {
                        String where = codec + " " + families.get(f) + " d=" + d + " group=" + group + " tokens="
                                + tokens + " " + kind + " of " + slots.length + " trial " + trial + " seed=" + seed;
                        GroupAttention st =
                                new GroupAttention(group, d, families.get(f).softmax());
                        st.begin(queries, 0, scale);
                        stores[f].attend(st, sel);
                        float[] out = new float[group * d];
                        st.finish(out, 0);
                        outs[f] = out;
                        double[] ref = Codecs.reference(stores[f], d, st.queries(), group, slots, slots.length);
                        float maxV = 0;
                        for (float x : kv[1]) {
                            maxV = Math.max(maxV, Math.abs(x));
                        }
                        for (int i = 0; i < out.length; i++) {
                            double tol = 2e-5 * (1 + maxV);
                            if (!(Math.abs(out[i] - ref[i]) <= tol)) {
                                fail(where + ": out[" + i + "] = " + out[i] + ", reference " + ref[i]);
                            }
                        }
                    }
                    for (int f = 1; f < families.size(); f++) {
                        for (int i = 0; i < outs[0].length; i++) {
                            assertEquals(
                                    Float.floatToRawIntBits(outs[0][i]),
                                    Float.floatToRawIntBits(outs[f][i]),
                                    codec + " " + kind + ": kernels differ at " + i + " seed=" + seed);
                        }
                    }
                }
            } finally {
                for (HeadStore s : stores) {
                    if (s != null) {
                        s.close();
                    }
                }
            }
        }
        assertEquals(live, NativeMemory.liveBytes(), "native bytes left after close, seed=" + seed);
    }

    /**
     * Key scores on the codes ({@link io.kvcache4j.store.KeyScoring}) against float64 dot products with
     * the keys the store reproduces, the same bits from both kernel families, misuse refused.
     */
    @ParameterizedTest
    @MethodSource("codecs")
    void keyScoresOnCodesMatchFloat64Reference(Codec codec) {
        long seed = TestSeeds.seed("key-scores-" + codec);
        SplittableRandom r = TestSeeds.random(seed);
        List<Family> families = Codecs.families();
        long live = NativeMemory.liveBytes();
        for (int trial = 0; trial < 8; trial++) {
            int d = headDim(r, codec);
            int group = 1 + r.nextInt(4);
            int tokens = 1 + r.nextInt(trial % 2 == 0 ? 40 : 300);
            float[][] kv = data(r, tokens, d);
            float[] queries = TestSeeds.floats(r, group * d, 2);
            int slots = r.nextInt(tokens + 1);
            int stride = slots + r.nextInt(5);
            float[][] outs = new float[families.size()][];
            for (int f = 0; f < families.size(); f++) {
                String where = codec + " " + families.get(f) + " d=" + d + " group=" + group + " tokens=" + tokens
                        + " slots=" + slots + " seed=" + seed;
                try (HeadStore store =
                        codec.create(d, 16 * (1 + r.nextInt(4)), families.get(f).codec())) {
                    store.append(kv[0], 0, kv[1], 0, d, tokens);
                    GroupAttention st =
                            new GroupAttention(group, d, families.get(f).softmax());
                    st.begin(queries, 0, 1f);
                    float[] out = new float[group * stride];
                    ((io.kvcache4j.store.KeyScoring) store).scoreKeys(st, slots, out, stride);
                    Codecs.checkKeyScores(store, d, queries, group, slots, out, stride, where);
                    checkAttendScored(store, families.get(f), r, queries, group, d, slots, out, stride, where);
                    outs[f] = out;
                    var scoring = (io.kvcache4j.store.KeyScoring) store;
                    assertThrows(IllegalArgumentException.class, () -> scoring.scoreKeys(st, tokens + 1, out, stride));
                    if (slots > 0) {
                        float[] short1 = new float[(group - 1) * stride + slots - 1];
                        assertThrows(
                                IllegalArgumentException.class, () -> scoring.scoreKeys(st, slots, short1, stride));
                        assertThrows(
                                IllegalArgumentException.class, () -> scoring.scoreKeys(st, slots, out, slots - 1));
                    }
                    store.close();
                    assertThrows(IllegalStateException.class, () -> scoring.scoreKeys(st, slots, out, stride));
                }
            }
            for (int f = 1; f < families.size(); f++) {
                for (int i = 0; i < outs[0].length; i++) {
                    assertEquals(
                            Float.floatToRawIntBits(outs[0][i]),
                            Float.floatToRawIntBits(outs[f][i]),
                            codec + ": kernels differ at " + i + " seed=" + seed);
                }
            }
        }
        assertEquals(live, NativeMemory.liveBytes(), "native bytes left after close, seed=" + seed);
    }

    /**
     * {@link io.kvcache4j.store.KeyScoring#attendScored} with the scored logits gives the bits of
     * {@code attend}: for the whole group, and for each head alone with its row of the logits (as HGCA
     * attends a head's own salient keys), over a random subset of the scored slots.
     */
    private static void checkAttendScored(
            HeadStore store,
            Family family,
            SplittableRandom r,
            float[] queries,
            int group,
            int d,
            int slots,
            float[] logits,
            int stride,
            String where) {
        if (slots == 0) {
            return;
        }
        int[] chosen = new int[slots];
        int m = 0;
        for (int j = 0; j < slots; j++) {
            if (r.nextInt(3) != 0) {
                chosen[m++] = j;
            }
        }
        if (m == 0) {
            chosen[m++] = r.nextInt(slots);
        }
        SlotSelection sel = new SlotSelection();
        var scoring = (io.kvcache4j.store.KeyScoring) store;
        for (int h = -1; h < group; h++) {
            int heads = h < 0 ? group : 1;
            float[] q = h < 0 ? queries : Arrays.copyOfRange(queries, h * d, (h + 1) * d);
            int offset = h < 0 ? 0 : h * stride;
            float[][] outs = new float[2][heads * d];
            for (int pass = 0; pass < 2; pass++) {
                GroupAttention st = new GroupAttention(heads, d, family.softmax());
                st.begin(q, 0, 1f);
                if (pass == 0) {
                    store.attend(st, sel.list(chosen, m));
                } else {
                    scoring.attendScored(st, sel.list(chosen, m), logits, offset, stride);
                }
                st.finish(outs[pass], 0);
            }
            for (int i = 0; i < outs[0].length; i++) {
                assertEquals(
                        Float.floatToRawIntBits(outs[0][i]),
                        Float.floatToRawIntBits(outs[1][i]),
                        where + (h < 0 ? " group" : " head " + h) + ": attendScored differs from attend at " + i);
            }
        }
        int last = chosen[m - 1];
        SlotSelection upToLast = new SlotSelection().list(chosen, m);
        assertThrows(
                IllegalArgumentException.class,
                () -> scoring.attendScored(new GroupAttention(group, d), upToLast, new float[last], 0, stride));
    }

    /** The test's own quantizers, mirroring the papers' formulas, against what the stores reproduce. */
    @ParameterizedTest
    @MethodSource("codecs")
    void everyElementIsWithinHalfAScaleOfItsInput(Codec codec) {
        long seed = TestSeeds.seed("error-" + codec);
        SplittableRandom r = TestSeeds.random(seed);
        for (int trial = 0; trial < 6; trial++) {
            int d = headDim(r, codec);
            int tokens = 1 + r.nextInt(300);
            float[][] kv = data(r, tokens, d);
            try (HeadStore store = codec.create(d, 32, CodecKernels.get())) {
                store.append(kv[0], 0, kv[1], 0, d, tokens);
                float[] row = new float[d];
                String where = codec + " d=" + d + " tokens=" + tokens + " seed=" + seed;
                if (codec.kivi() == null) {
                    for (int t = 0; t < tokens; t++) {
                        for (int kvIdx = 0; kvIdx < 2; kvIdx++) {
                            float[] src = kv[kvIdx];
                            float s = Int8HeadStore.scale(src, t * d, d);
                            if (kvIdx == 0) {
                                store.readKey(t, row, 0);
                            } else {
                                store.readValue(t, row, 0);
                            }
                            for (int i = 0; i < d; i++) {
                                float x = src[t * d + i];
                                assertTrue(
                                        Math.abs(row[i] - x) <= s / 2 * 1.0001f, where + " slot " + t + " elem " + i);
                                float expect = s * (float) Math.max(-127, Math.min(127, Math.rint(x / s)));
                                assertTrue((s == 0 ? 0f : expect) == row[i], where + " slot " + t + ": " + row[i]);
                            }
                        }
                    }
                    continue;
                }
                KiviConfig c = codec.kivi();
                int g = c.groupTokens();
                int quantized = g * Math.max(0, (tokens - c.residualTokens()) / g);
                assertEquals(quantized, ((KiviHeadStore) store).quantizedTokens(), where);
                int levels = (1 << c.bits()) - 1;
                float[] k16 = new float[kv[0].length];
                float[] v16 = new float[kv[1].length];
                for (int i = 0; i < k16.length; i++) {
                    k16[i] = Float.float16ToFloat(Float.floatToFloat16(kv[0][i]));
                    v16[i] = Float.float16ToFloat(Float.floatToFloat16(kv[1][i]));
                }
                for (int t = 0; t < tokens; t++) {
                    store.readKey(t, row, 0);
                    for (int i = 0; i < d; i++) {
                        if (t >= quantized) {
                            assertEquals(k16[t * d + i], row[i], where + " residual key " + t);
                            continue;
                        }
                        int g0 = t / g * g;
                        float mn = Float.POSITIVE_INFINITY;
                        float mx = Float.NEGATIVE_INFINITY;
                        for (int u = g0; u < g0 + g; u++) {
                            mn = Math.min(mn, k16[u * d + i]);
                            mx = Math.max(mx, k16[u * d + i]);
                        }
                        float s = storedScale(c, (mx - mn) / levels);
                        checkAsymmetric(k16[t * d + i], row[i], s, mn, levels, where + " key " + t + " ch " + i);
                    }
                    store.readValue(t, row, 0);
                    int vg = c.valueGroupChannels();
                    for (int i = 0; i < d; i++) {
                        if (t >= quantized) {
                            assertEquals(v16[t * d + i], row[i], where + " residual value " + t);
                            continue;
                        }
                        int c0 = i / vg * vg;
                        float mn = Float.POSITIVE_INFINITY;
                        float mx = Float.NEGATIVE_INFINITY;
                        for (int u = c0; u < c0 + vg; u++) {
                            mn = Math.min(mn, v16[t * d + u]);
                            mx = Math.max(mx, v16[t * d + u]);
                        }
                        float s = storedScale(c, (mx - mn) / levels);
                        checkAsymmetric(v16[t * d + i], row[i], s, mn, levels, where + " value " + t + " ch " + i);
                    }
                }
            }
        }
    }

    /** The scale as the configuration stores it: f32 as is, f16 rounded up to the next f16 value. */
    private static float storedScale(KiviConfig c, float s) {
        if (c.scaleType() == io.kvcache4j.api.KvDType.F32) {
            return s;
        }
        short h = Float.floatToFloat16(s);
        float f = Float.float16ToFloat(h);
        return f >= s ? f : Float.float16ToFloat((short) (h + 1));
    }

    private static void checkAsymmetric(float x, float got, float s, float z, int levels, String where) {
        assertTrue(Math.abs(got - x) <= s / 2 * 1.0001f + Math.ulp(Math.abs(x) + Math.abs(z)), where);
        float code = s == 0 ? 0 : (float) Math.max(0, Math.min(levels, Math.rint((x - z) / s)));
        assertEquals(s * code + z, got, where);
    }

    /**
     * Compaction as a cache of granularity g does it (whole complete groups leave, order kept; with
     * g = 1 also holes filled from the end): survivors read back bit for bit, attention still matches
     * the reference, and bytes follow.
     */
    @ParameterizedTest
    @MethodSource("codecs")
    void compactionKeepsTheSurvivorsExactly(Codec codec) {
        long seed = TestSeeds.seed("compact-" + codec);
        SplittableRandom r = TestSeeds.random(seed);
        int g = codec.granularity();
        long live = NativeMemory.liveBytes();
        for (int trial = 0; trial < 8; trial++) {
            int d = headDim(r, codec);
            String where = codec + " d=" + d + " trial " + trial + " seed=" + seed;
            try (HeadStore store = codec.create(d, 16, CodecKernels.get())) {
                List<float[]> keys = new ArrayList<>();
                List<float[]> values = new ArrayList<>();
                for (int round = 0; round < 6; round++) {
                    int add = 1 + r.nextInt(120);
                    float[][] kv = data(r, add, d);
                    store.append(kv[0], 0, kv[1], 0, d, add);
                    float[] row = new float[d];
                    // appends quantize residual groups: what the store reproduces is read afresh
                    keys.clear();
                    values.clear();
                    for (int t = 0; t < store.count(); t++) {
                        store.readKey(t, row, 0);
                        keys.add(row.clone());
                        store.readValue(t, row, 0);
                        values.add(row.clone());
                    }
                    // remove random whole complete groups, keeping order
                    int count = store.count();
                    int complete = count / g;
                    boolean[] remove = new boolean[complete];
                    for (int q = 0; q < complete; q++) {
                        remove[q] = r.nextDouble() < 0.3;
                    }
                    int first = -1;
                    for (int q = 0; q < complete && first < 0; q++) {
                        if (remove[q]) {
                            first = q;
                        }
                    }
                    if (first < 0) {
                        continue;
                    }
                    int from = first * g;
                    int[] sources = new int[count];
                    int moved = 0;
                    List<float[]> newKeys = new ArrayList<>(keys.subList(0, from));
                    List<float[]> newValues = new ArrayList<>(values.subList(0, from));
                    for (int s = from; s < count; s++) {
                        if (s / g < complete && remove[s / g]) {
                            continue;
                        }
                        sources[moved++] = s;
                        newKeys.add(keys.get(s));
                        newValues.add(values.get(s));
                    }
                    int newCount = from + moved;
                    store.compact(from, sources, moved, newCount);
                    keys = newKeys;
                    values = newValues;
                    assertEquals(newCount, store.count(), where);
                    for (int s = 0; s < newCount; s++) {
                        store.readKey(s, row, 0);
                        assertTrue(Arrays.equals(keys.get(s), row), where + " round " + round + " key " + s);
                        store.readValue(s, row, 0);
                        assertTrue(Arrays.equals(values.get(s), row), where + " round " + round + " value " + s);
                    }
                    assertEquals(store.bytesHeld(), NativeMemory.liveBytes() - live, where + " bytes");
                    checkAttention(store, d, r, where);
                }
                if (g == 1 && store.count() > 3) {
                    // a hole filled from the end, as a g = 1 cache may do
                    int count = store.count();
                    int hole = r.nextInt(count - 1);
                    store.compact(hole, new int[] {count - 1}, 1, count - 1);
                    keys.set(hole, keys.get(count - 1));
                    keys.remove(count - 1);
                    float[] row = new float[d];
                    for (int s = 0; s < count - 1; s++) {
                        store.readKey(s, row, 0);
                        assertTrue(Arrays.equals(keys.get(s), row), where + " hole fill, key " + s);
                    }
                }
            }
        }
        assertEquals(live, NativeMemory.liveBytes(), "native bytes left after close, seed=" + seed);
    }

    private static void checkAttention(HeadStore store, int d, SplittableRandom r, String where) {
        int count = store.count();
        if (count == 0) {
            return;
        }
        int group = 1 + r.nextInt(3);
        float[] queries = TestSeeds.floats(r, group * d, 2);
        SlotSelection sel = new SlotSelection();
        int[] slots = select(r, count, SlotSelection.Kind.values()[r.nextInt(3)], sel);
        GroupAttention st = new GroupAttention(group, d);
        st.begin(queries, 0, 0.25f);
        store.attend(st, sel);
        float[] out = new float[group * d];
        st.finish(out, 0);
        double[] ref = Codecs.reference(store, d, st.queries(), group, slots, slots.length);
        for (int i = 0; i < out.length; i++) {
            assertTrue(Math.abs(out[i] - ref[i]) <= 1e-4, where + ": out[" + i + "] " + out[i] + " vs " + ref[i]);
        }
    }

    /** Bytes held are the blocks the store allocated, by formula and by the process's native count. */
    @Test
    void bytesHeldIsExact() {
        long live = NativeMemory.liveBytes();
        int d = 64;
        try (Int8HeadStore s = new Int8HeadStore(d, 32, CodecKernels.get())) {
            assertEquals(0, s.bytesHeld());
            float[] x = new float[100 * d];
            Arrays.fill(x, 0.5f);
            s.append(x, 0, x, 0, d, 100);
            long block = 2 * 4 * 16 + 16L * d + 16L * 64;
            long page = (block * 2 + 63) / 64 * 64;
            assertEquals(4 * page, s.bytesHeld());
            assertEquals(s.bytesHeld(), NativeMemory.liveBytes() - live);
            long f16 = io.kvcache4j.store.PagedHeadStore.bytesFor(io.kvcache4j.api.KvDType.F16, d, 32, 100);
            assertTrue(s.bytesHeld() < f16 * 0.6, "int8 holds over 60% of f16 (" + f16 + "): " + s.bytesHeld());
        }
        for (int bits : new int[] {2, 4}) {
            KiviConfig c = KiviConfig.defaults(bits);
            try (KiviHeadStore s = new KiviHeadStore(c, 128, 64, CodecKernels.get())) {
                float[] x = TestSeeds.floats(new SplittableRandom(bits), 1000 * 128, 1);
                s.append(x, 0, x, 0, 128, 1000);
                int per = 8 / bits;
                // f16 scales and zero points: 2 · 2 bytes per key channel, per token and value group
                long group =
                        4L * 128 + 4L * 32 * 4 + 2 * 16L * (128 / per) + 32L * 16 * ((128 + 16 * per - 1) / (16 * per));
                assertEquals(group, s.groupBytes(), "int" + bits + " group bytes");
                int groups = (1000 - 128) / 32;
                assertEquals(groups * 32, s.quantizedTokens());
                long pages = (groups + 1) / 2 * ((2 * group + 63) / 64 * 64);
                long residual = 2L * s.residualCapacity() * 2 * 128;
                assertEquals(pages + residual, s.bytesHeld(), "int" + bits);
                assertEquals(s.bytesHeld(), NativeMemory.liveBytes() - live, "int" + bits);
                long f16 = 1000L * 128 * 2 * 2;
                System.out.println("[bytes] int" + bits + ": " + s.bytesHeld() + " bytes for 1000 tokens, f16 " + f16);
                assertTrue(s.bytesHeld() < f16 * (bits == 2 ? 0.4 : 0.5), "int" + bits + " saves too little");
            }
        }
        assertEquals(live, NativeMemory.liveBytes());
    }

    /**
     * Without a residual beyond the incomplete group ({@code r=0}), the f16 block follows the rows it
     * holds: freed when a group leaves for the codes, grown again by doubling from 16 rows.
     */
    @Test
    void residualBlockFollowsItsRowsWhenGroupsLeave() {
        long live = NativeMemory.liveBytes();
        int d = 32;
        KiviConfig c = new KiviConfig(4, 64, 0, 32, io.kvcache4j.api.KvDType.F16);
        try (KiviHeadStore s = new KiviHeadStore(c, d, 64, CodecKernels.get())) {
            float[] x = TestSeeds.floats(new SplittableRandom(3), 200 * d, 1);
            s.append(x, 0, x, 0, d, 64);
            assertEquals(64, s.quantizedTokens());
            assertEquals(0, s.residualCapacity(), "the residual leaves with the group");
            long codes = s.bytesHeld();
            s.append(x, 64 * d, x, 64 * d, d, 16);
            assertEquals(16, s.residualCapacity());
            assertEquals(codes + 2L * 16 * d * 2, s.bytesHeld());
            s.append(x, 80 * d, x, 80 * d, d, 20);
            assertEquals(64, s.residualCapacity(), "doubled 16 -> 32 -> 64 for 36 rows");
            s.append(x, 100 * d, x, 100 * d, d, 28);
            assertEquals(128, s.quantizedTokens());
            assertEquals(0, s.residualCapacity());
            assertEquals(s.bytesHeld(), NativeMemory.liveBytes() - live);
        }
        assertEquals(live, NativeMemory.liveBytes());
    }

    /** The Panama kernel gives the same bits on every call (whatever the JIT has compiled by then). */
    @Test
    void panamaKernelIsDeterministic() {
        List<Family> families = Codecs.families();
        Family f = families.get(0);
        long seed = TestSeeds.seed("determinism-" + f);
        SplittableRandom r = TestSeeds.random(seed);
        int d = 64;
        int group = 4;
        float[][] kv = data(r, 700, d);
        float[] queries = TestSeeds.floats(r, group * d, 2);
        for (Codec codec : Codecs.codecs()) {
            try (HeadStore store = codec.create(d, 64, f.codec())) {
                store.append(kv[0], 0, kv[1], 0, d, 700);
                float[] first = null;
                for (int rep = 0; rep < 400; rep++) {
                    GroupAttention st = new GroupAttention(group, d, f.softmax());
                    st.begin(queries, 0, 0.125f);
                    store.attend(st, new SlotSelection().prefix(store.count()));
                    float[] out = new float[group * d];
                    st.finish(out, 0);
                    if (first == null) {
                        first = out;
                    } else {
                        for (int i = 0; i < out.length; i++) {
                            assertEquals(
                                    Float.floatToRawIntBits(first[i]),
                                    Float.floatToRawIntBits(out[i]),
                                    codec + " repetition " + rep + " element " + i + " seed=" + seed);
                        }
                    }
                }
            }
        }
    }

    @Test
    void badConfigurationsAreRejectedNamingTheValue() {
        assertMessage(() -> new KiviConfig(3, 32, 128, 32), "bits must be 2 or 4, was 3");
        assertMessage(() -> new KiviConfig(8, 32, 128, 32), "bits must be 2 or 4, was 8");
        assertMessage(() -> new KiviConfig(4, 0, 128, 32), "groupTokens must be in [1, 65536], was 0");
        assertMessage(() -> new KiviConfig(4, 32, -1, 32), "residualTokens must be in [0, 1048576], was -1");
        assertMessage(
                () -> new KiviConfig(4, 32, 100, 32), "residualTokens must be a multiple of groupTokens 32, was 100");
        assertMessage(() -> new KiviConfig(4, 32, 128, 0), "valueGroupChannels must be in [1, ");
        assertMessage(() -> KiviConfig.defaults(2).check(48), "valueGroupChannels must divide headDim 48, was 32");
        assertMessage(
                () -> new KiviHeadStore(KiviConfig.defaults(4), 48, 16, CodecKernels.get()),
                "valueGroupChannels must divide headDim 48, was 32");
        assertMessage(
                () -> KiviConfig.defaults(4).check(io.kvcache4j.api.Budget.tokens(100)),
                "residualTokens must be in [0, 100] (the budget of 100 tokens), was 128");
        KiviConfig.defaults(4).check(io.kvcache4j.api.Budget.tokens(128));
        assertMessage(() -> new Int8Config(10), "pageTokens must be a multiple of 16 in [16, 65536], was 10");
        assertMessage(() -> KiviConfig.defaults(4).factory(0), "pageTokens must be a multiple of 16");
        assertMessage(() -> new Int8HeadStore(0, 16, CodecKernels.get()), "headDim must be >= 1, was 0");
    }

    private static void assertMessage(Runnable r, String expected) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertTrue(e.getMessage().contains(expected), "message '" + e.getMessage() + "' lacks '" + expected + "'");
    }

    @Test
    void providersAreInstalledByName() {
        for (String name : List.of("int8", "int4", "int2")) {
            assertTrue(
                    io.kvcache4j.store.HeadStores.names().contains(name),
                    name + " in " + io.kvcache4j.store.HeadStores.names());
            var factory = io.kvcache4j.store.HeadStores.factory(name, 16);
            assertEquals(name, factory.name());
        }
    }

    /** Options after a storage name configure KIVI; bad ones are refused naming the option and value. */
    @Test
    void storageOptionsConfigureKivi() {
        var p = (Providers.Kivi) io.kvcache4j.store.HeadStores.provider("int4:g=64:r=0:scales=f32");
        assertEquals("int4:g=64:r=0:scales=f32", p.name());
        assertEquals(new KiviConfig(4, 64, 0, 32, io.kvcache4j.api.KvDType.F32), p.config());
        assertEquals(
                KiviConfig.defaults(2), ((Providers.Kivi) io.kvcache4j.store.HeadStores.provider("int2")).config());
        assertEquals(
                new KiviConfig(2, 32, 64, 16, io.kvcache4j.api.KvDType.F16),
                ((Providers.Kivi) io.kvcache4j.store.HeadStores.provider("INT2:r=64:vg=16")).config());
        try (var store = p.factory(64)
                .create(new io.kvcache4j.store.HeadStoreFactory.Spec(
                        new io.kvcache4j.api.ModelShape(1, 4, 1, 32), 0, 0))) {
            assertEquals(64, store.granularity());
        }
        var rotated = io.kvcache4j.store.HeadStores.provider("int4+rht:g=64:r=64");
        assertEquals("int4+rht:g=64:r=64", rotated.name());
        rotated.factory(16);
        assertMessage(
                () -> io.kvcache4j.store.HeadStores.provider("int4:g=64:r=32"),
                "storage 'int4:g=64:r=32': residualTokens must be a multiple of groupTokens 64, was 32");
        assertMessage(
                () -> io.kvcache4j.store.HeadStores.provider("int4:q=1"),
                "storage 'int4:q=1': unknown option 'q'; options: g, r, vg, scales");
        assertMessage(() -> io.kvcache4j.store.HeadStores.provider("int4:g=x"), "option g must be an integer, was 'x'");
        assertMessage(
                () -> io.kvcache4j.store.HeadStores.provider("int4:scales=bf16"),
                "scales must be f16 or f32, was bf16");
        assertMessage(() -> io.kvcache4j.store.HeadStores.provider("int4:g"), "option 'g' must be key=value");
        assertMessage(() -> io.kvcache4j.store.HeadStores.provider("int4:g=32:g=64"), "option 'g' given twice");
        assertMessage(() -> io.kvcache4j.store.HeadStores.provider("int8:g=32"), "storage 'int8' takes no options");
        assertMessage(() -> io.kvcache4j.store.HeadStores.provider("int4+rht:q=1"), "unknown option 'q'");
    }
}
