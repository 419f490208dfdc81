package io.kvcache4j.quantization;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.quantization.Codecs.Family;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The kernel families against each other, bit for bit, and unpacking against the documented layout. */
class CodecKernelTest {

    @Test
    void kernelsAgreeToTheBit() {
        long seed = TestSeeds.seed("codec-kernels");
        SplittableRandom r = TestSeeds.random(seed);
        List<Family> families = Codecs.families();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(16 * 64);
            for (int i = 0; i < seg.byteSize(); i++) {
                seg.set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt(256));
            }
            for (int bits : new int[] {8, 4, 2}) {
                int planes = 8 / bits;
                for (Family f : families) {
                    float[] got = new float[64 * 16 * planes];
                    f.codec().unpack(seg, 16, bits, 63, got, 0);
                    for (int e = 0; e < 63 * 16 * planes; e++) {
                        int u = e / (16 * planes);
                        int m = e % (16 * planes) / 16;
                        byte b = seg.get(ValueLayout.JAVA_BYTE, 16 + 16L * u + e % 16);
                        float expect = bits == 8 ? b : ((b & 0xFF) >>> (bits * m)) & ((1 << bits) - 1);
                        assertEquals(expect, got[e], f + " bits " + bits + " code " + e + " seed=" + seed);
                    }
                }
            }
        }
        for (int trial = 0; trial < 50; trial++) {
            int d = 1 + r.nextInt(130);
            int gc = 1 + r.nextInt(d);
            int nb = 1 + r.nextInt(16);
            float[] q = TestSeeds.floats(r, d, 3);
            float[] codes = TestSeeds.floats(r, d * 16, 8);
            float[] v = TestSeeds.floats(r, 16 * d, 8);
            int groups = (d + gc - 1) / gc;
            float[] w = TestSeeds.floats(r, 16 * groups, 1);
            float[] acc0 = TestSeeds.floats(r, d, 1);
            float bias = (float) r.nextDouble();
            float[][] scores = new float[families.size()][16];
            float[][] accs = new float[families.size()][];
            for (int f = 0; f < families.size(); f++) {
                families.get(f).codec().scores(q, 0, d, codes, bias, scores[f], 0);
                accs[f] = acc0.clone();
                families.get(f).codec().accumulate(accs[f], 0, d, gc, v, d, w, groups, nb);
            }
            for (int f = 1; f < families.size(); f++) {
                for (int j = 0; j < 16; j++) {
                    assertEquals(
                            Float.floatToRawIntBits(scores[0][j]),
                            Float.floatToRawIntBits(scores[f][j]),
                            "scores d=" + d + " seed=" + seed);
                }
                for (int c = 0; c < d; c++) {
                    assertEquals(
                            Float.floatToRawIntBits(accs[0][c]),
                            Float.floatToRawIntBits(accs[f][c]),
                            "accumulate d=" + d + " gc=" + gc + " seed=" + seed);
                }
            }
        }
    }
}
