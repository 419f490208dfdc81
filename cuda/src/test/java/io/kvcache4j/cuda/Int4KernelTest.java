package io.kvcache4j.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.quantization.CodecKernels;
import io.kvcache4j.quantization.KiviConfig;
import io.kvcache4j.quantization.KiviHeadStore;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** {@code kv_decode_int4}'s twin on KIVI's packed layout. */
class Int4KernelTest {

    /** The layout's quantizer writes the codes KiviHeadStore writes: both reproduce the same keys and values. */
    @Test
    void layoutMatchesKiviHeadStore() {
        int d = 64, g = 32, groups = 3;
        KiviConfig config = new KiviConfig(4, g, 0, 32);
        KiviLayout layout = KiviLayout.of(config, d);
        SplittableRandom r = new SplittableRandom(1);
        MemorySegment seg = MemorySegment.ofArray(new long[(int) (groups * layout.groupBytes() / 8 + 1)]);
        try (KiviHeadStore store = new KiviHeadStore(config, d, 64, CodecKernels.get())) {
            float[] k = new float[g * d];
            float[] v = new float[g * d];
            for (int grp = 0; grp < groups; grp++) {
                for (int e = 0; e < g * d; e++) {
                    k[e] = (float) (r.nextDouble() * 4 - 2);
                    v[e] = (float) (r.nextDouble() * 4 - 2);
                }
                layout.quantize(k, v, seg, grp);
                store.append(k, 0, v, 0, d, g);
            }
            assertEquals(groups * g, store.quantizedTokens());
            float[] row = new float[d];
            for (int s = 0; s < groups * g; s++) {
                store.readKey(s, row, 0);
                for (int i = 0; i < d; i++) {
                    assertEquals(row[i], layout.key(seg, s, i), 0f, "key " + s + "," + i);
                }
                store.readValue(s, row, 0);
                for (int i = 0; i < d; i++) {
                    // the store rounds s·c then adds z; the kernel fuses them
                    assertEquals(row[i], layout.value(seg, s, i), 1e-6f, "value " + s + "," + i);
                }
            }
        }
    }

    @Test
    void int4DecodeMatchesFloat64OverTheDequantizedRows() {
        int tokens = 2, kvHeads = 2, group = 4, d = 128, slots = 32 * 40;
        KiviLayout layout = new KiviLayout(d, 32, 32);
        int[] visible = {slots, 320, 0, slots - 64};
        KernelHarness.Int4Problem p = KernelHarness.randomInt4(layout, tokens, kvHeads, group, slots, visible, 3f, 4);
        try (EmulatedDevice dev = new EmulatedDevice()) {
            KernelHarness.Result got = KernelHarness.decodeInt4(dev, p, 256);
            KernelHarness.Result byLength = KernelHarness.decodeInt4(dev, p, KernelEmulator.CHUNK_BY_LENGTH);
            KernelHarness.Result want = Reference.decode(
                    tokens,
                    kvHeads,
                    group,
                    d,
                    p.queries(),
                    visible,
                    p.scale(),
                    (h, s, i, value) -> value ? layout.value(p.groups()[h], s, i) : layout.key(p.groups()[h], s, i));
            double rel = KernelHarness.relativeError(got, want, d);
            assertTrue(rel < 2e-5, "relative error " + rel);
            assertTrue(KernelHarness.lseError(got, want) < 2e-5);
            double relByLength = KernelHarness.relativeError(byLength, want, d);
            assertTrue(relByLength < 2e-5, "chunks by length: relative error " + relByLength);
            assertTrue(KernelHarness.lseError(byLength, want) < 2e-5);
            var e = org.junit.jupiter.api.Assertions.assertThrows(
                    IllegalArgumentException.class, () -> KernelHarness.decodeInt4(dev, p, 100));
            assertTrue(e.getMessage().contains("multiple of 32"), e.getMessage());
            assertEquals(Float.NEGATIVE_INFINITY, got.lse()[kvHeads * group]); // token 1, KV head 0 sees nothing
        }
    }
}
