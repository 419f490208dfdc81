package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerBatch;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.attention.Partial;
import io.kvcache4j.cache.CpuLayerAttention;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.PagedHeadStore;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Method;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The kernels' CPU twin against float64 references and against kv-api's CPU attention. */
class KernelEmulatorTest {

    @Test
    void expIsBitForBitKvApisSoftmaxExp() throws Throwable {
        Class<?> c = Class.forName("io.kvcache4j.attention.SoftmaxExp");
        Method m = c.getDeclaredMethod("exp", float.class);
        m.setAccessible(true);
        MethodHandle h = MethodHandles.lookup().unreflect(m).asType(MethodType.methodType(float.class, float.class));
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < 200_000; i++) {
            float x = i < 1000 ? -i * 0.11f : (float) (r.nextDouble() * -110);
            float want = (float) h.invokeExact(x);
            assertEquals(
                    Float.floatToRawIntBits(want), Float.floatToRawIntBits(KernelEmulator.exp(x)), "exp(" + x + ")");
        }
        assertEquals(0f, KernelEmulator.exp(Float.NEGATIVE_INFINITY));
        assertEquals(1f, KernelEmulator.exp(0f));
    }

    static int[] ragged(SplittableRandom r, int tokens, int kvHeads, int slots) {
        int[] v = new int[tokens * kvHeads];
        for (int i = 0; i < v.length; i++) {
            v[i] = switch (i % 4) {
                case 0 -> slots;
                case 1 -> r.nextInt(slots + 1);
                case 2 -> i == 2 ? 0 : 1 + r.nextInt(31);
                default -> slots - r.nextInt(Math.min(slots, 200));
            };
        }
        return v;
    }

    @ParameterizedTest
    @CsvSource({
        "F16, 1, 2, 4, 64, 1000, 256",
        "F16, 3, 2, 8, 128, 2500, 512",
        "BF16, 2, 3, 2, 64, 777, 128",
        "F16, 2, 1, 1, 256, 300, 128",
        "F16, 1, 4, 4, 8, 5000, 2048",
        "F16, 2, 2, 2, 16, 150000, 0",
        "BF16, 1, 3, 1, 8, 3000, 0"
    })
    void decodeMatchesFloat64(KvDType type, int tokens, int kvHeads, int group, int d, int slots, int chunk) {
        SplittableRandom r = new SplittableRandom(slots * 31L + d);
        KernelHarness.Problem p =
                KernelHarness.random(type, tokens, kvHeads, group, d, slots, ragged(r, tokens, kvHeads, slots), 3f, 11);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            KernelHarness.Result got = KernelHarness.decode(dev, p, chunk, null);
            KernelHarness.Result want = Reference.decode(p);
            double rel = KernelHarness.relativeError(got, want, d);
            double lse = KernelHarness.lseError(got, want);
            assertTrue(rel < 2e-5, "relative error " + rel);
            assertTrue(lse < 2e-5, "lse error " + lse);
            assertEquals(0L, leftover(dev), "every allocation freed");
        }
    }

    @Test
    void chunksByLengthDependOnTheVisibleCountAlone() {
        assertEquals(1024, KernelEmulator.chunkFor(0));
        assertEquals(1024, KernelEmulator.chunkFor(32 * 1024));
        assertEquals(2048, KernelEmulator.chunkFor(32 * 1024 + 1));
        assertEquals(2048, KernelEmulator.chunkFor(64 * 1024));
        assertEquals(4096, KernelEmulator.chunkFor(128 * 1024));
        assertEquals(8192, KernelEmulator.chunkFor(128 * 1024 + 1));
        assertEquals(8192, KernelEmulator.chunkFor(Integer.MAX_VALUE));
        assertEquals(128, KernelEmulator.chunks(1 << 20, KernelEmulator.CHUNK_BY_LENGTH));
        assertEquals(32, KernelEmulator.chunks(1 << 16, KernelEmulator.CHUNK_BY_LENGTH));
        assertEquals(0, KernelEmulator.chunks(0, KernelEmulator.CHUNK_BY_LENGTH));
        assertEquals(3, KernelEmulator.chunks(5000, 2048));
        for (int v = 1; v < 3_000_000; v += 9_973) {
            int c = KernelEmulator.chunks(v, KernelEmulator.CHUNK_BY_LENGTH);
            assertTrue(c <= Math.max(128, (v + 8191) / 8192), v + " visible slots in " + c + " chunks");
        }
    }

    @Test
    void aTokensChunksByLengthDoNotDependOnItsBatch() {
        // the same query token alone and beside a much longer one: bit-identical output and lse
        int kvHeads = 1, group = 2, d = 8, slots = 140_000;
        KernelHarness.Problem both =
                KernelHarness.random(KvDType.F16, 2, kvHeads, group, d, slots, new int[] {3000, slots}, 3f, 21);
        KernelHarness.Problem alone = new KernelHarness.Problem(
                both.type(),
                1,
                kvHeads,
                group,
                d,
                slots,
                both.keys(),
                both.values(),
                java.util.Arrays.copyOf(both.queries(), group * d),
                new int[] {3000},
                both.scale());
        try (EmulatedDevice dev = new EmulatedDevice()) {
            KernelHarness.Result b = KernelHarness.decode(dev, both, KernelEmulator.CHUNK_BY_LENGTH, null);
            KernelHarness.Result a = KernelHarness.decode(dev, alone, KernelEmulator.CHUNK_BY_LENGTH, null);
            for (int i = 0; i < group * d; i++) {
                assertEquals(Float.floatToRawIntBits(a.out()[i]), Float.floatToRawIntBits(b.out()[i]), "element " + i);
            }
            for (int g = 0; g < group; g++) {
                assertEquals(Float.floatToRawIntBits(a.lse()[g]), Float.floatToRawIntBits(b.lse()[g]));
            }
        }
    }

    private static long leftover(EmulatedDevice dev) {
        return dev.bytesAllocated();
    }

    /** The same rows through kv-api's CPU layer source (its own chunking) agree with the emulated kernels. */
    @Test
    void decodeMatchesKvApiCpuLayerAttention() {
        int tokens = 3, kvHeads = 2, group = 4, d = 64, slots = 3000;
        ModelShape shape = new ModelShape(1, kvHeads * group, kvHeads, d);
        SplittableRandom r = new SplittableRandom(5);
        int[] visible = new int[tokens * kvHeads];
        for (int i = 0; i < visible.length; i++) {
            visible[i] = slots - r.nextInt(900);
        }
        KernelHarness.Problem p = KernelHarness.random(KvDType.F16, tokens, kvHeads, group, d, slots, visible, 2f, 3);
        HeadStore[] stores = new HeadStore[kvHeads];
        float[] krow = new float[d];
        float[] vrow = new float[d];
        for (int h = 0; h < kvHeads; h++) {
            stores[h] = new PagedHeadStore(KvDType.F16, d, 64, AttentionKernels.get());
            for (int s = 0; s < slots; s++) {
                for (int i = 0; i < d; i++) {
                    krow[i] = p.element(h, s, i, false);
                    vrow[i] = p.element(h, s, i, true);
                }
                stores[h].append(krow, 0, vrow, 0, d, 1);
            }
        }
        float[] out = new float[tokens * shape.queryRowFloats()];
        float[] lse = new float[tokens * shape.queryHeads()];
        LayerBatch b =
                new LayerBatch(shape, tokens).set(0, tokens, p.queries(), 0, p.scale(), out, 0, lse, 0, null, null);
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < kvHeads; h++) {
                b.setVisible(t, h, visible[t * kvHeads + h]);
            }
        }
        new CpuLayerAttention(new LayerContext(shape, 0, stores, null), AttentionKernels.get(), 1024).attend(b);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            KernelHarness.Result got = KernelHarness.decode(dev, p, 512, null);
            KernelHarness.Result cpu = new KernelHarness.Result(out, lse);
            assertTrue(KernelHarness.relativeError(got, cpu, d) < 1e-5);
            assertTrue(KernelHarness.lseError(got, cpu) < 1e-5);
        }
        for (HeadStore s : stores) {
            s.close();
        }
    }

    /** {@code kv_combine_hybrid}: dense partials on the device plus a partial over other rows = attention over all. */
    @Test
    void hybridMergeEqualsAttentionOverTheUnion() {
        int tokens = 2, kvHeads = 2, group = 4, d = 64, dense = 1500, sparse = 300;
        int[] visAll = new int[tokens * kvHeads];
        int[] visDense = new int[tokens * kvHeads];
        int[] visSparse = new int[tokens * kvHeads];
        java.util.Arrays.fill(visAll, dense + sparse);
        java.util.Arrays.fill(visDense, dense);
        java.util.Arrays.fill(visSparse, sparse);
        KernelHarness.Problem all =
                KernelHarness.random(KvDType.F16, tokens, kvHeads, group, d, dense + sparse, visAll, 3f, 21);
        short[][] kd = new short[kvHeads][],
                vd = new short[kvHeads][],
                ks = new short[kvHeads][],
                vs = new short[kvHeads][];
        for (int h = 0; h < kvHeads; h++) {
            kd[h] = java.util.Arrays.copyOfRange(all.keys()[h], 0, dense * d);
            vd[h] = java.util.Arrays.copyOfRange(all.values()[h], 0, dense * d);
            ks[h] = java.util.Arrays.copyOfRange(all.keys()[h], dense * d, (dense + sparse) * d);
            vs[h] = java.util.Arrays.copyOfRange(all.values()[h], dense * d, (dense + sparse) * d);
        }
        var pDense = new KernelHarness.Problem(
                KvDType.F16, tokens, kvHeads, group, d, dense, kd, vd, all.queries(), visDense, all.scale());
        var pSparse = new KernelHarness.Problem(
                KvDType.F16, tokens, kvHeads, group, d, sparse, ks, vs, all.queries(), visSparse, all.scale());
        KernelHarness.Result cpuSparse = Reference.decode(pSparse);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            KernelHarness.Result got = KernelHarness.decode(dev, pDense, 256, cpuSparse);
            KernelHarness.Result want = Reference.decode(all);
            assertTrue(KernelHarness.relativeError(got, want, d) < 2e-5);
            assertTrue(KernelHarness.lseError(got, want) < 2e-5);
        }
    }

    /** {@code kv_combine} agrees with {@link Partial#merge} (float64 weights) on random partials. */
    @Test
    void combineMatchesPartialMerge() {
        int rows = 5, chunks = 7, d = 16;
        SplittableRandom r = new SplittableRandom(9);
        float[] po = new float[rows * chunks * d];
        float[] pl = new float[rows * chunks];
        for (int i = 0; i < po.length; i++) {
            po[i] = (float) (r.nextDouble() * 2 - 1);
        }
        for (int i = 0; i < pl.length; i++) {
            pl[i] = i % 5 == 3 ? Float.NEGATIVE_INFINITY : (float) (r.nextDouble() * 20 - 10);
        }
        float[] out = new float[rows * d];
        float[] lse = new float[rows];
        var seg = (java.util.function.Function<float[], java.lang.foreign.MemorySegment>)
                java.lang.foreign.MemorySegment::ofArray;
        KernelEmulator.combine(
                seg.apply(po), seg.apply(pl), null, null, seg.apply(out), seg.apply(lse), rows, chunks, d);
        for (int row = 0; row < rows; row++) {
            Partial[] parts = new Partial[chunks];
            for (int c = 0; c < chunks; c++) {
                parts[c] = new Partial(1, d);
                System.arraycopy(po, (row * chunks + c) * d, parts[c].out(), 0, d);
                parts[c].lse()[0] = pl[row * chunks + c];
            }
            Partial dst = new Partial(1, d);
            Partial.merge(parts, chunks, dst);
            assertEquals(dst.lse()[0], lse[row], 1e-5);
            for (int i = 0; i < d; i++) {
                assertEquals(dst.out()[i], out[row * d + i], 1e-5);
            }
        }
    }
}
