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
            float[] q = TestSeeds.floats(r, d, 3);
            float[] codes = TestSeeds.floats(r, d * 16, 8);
            float bias = (float) r.nextDouble();
            float[][] scores = new float[families.size()][16];
            for (int f = 0; f < families.size(); f++) {
                families.get(f).codec().scores(q, 0, d, codes, bias, scores[f], 0);
            }
            for (int f = 1; f < families.size(); f++) {
                for (int j = 0; j < 16; j++) {
                    assertEquals(
                            Float.floatToRawIntBits(scores[0][j]),
                            Float.floatToRawIntBits(scores[f][j]),
                            "scores d=" + d + " seed=" + seed);
                }
            }
        }
    }

    /**
     * Scoring packed codes for several heads at once gives, in every family, the bits of unpacking
     * followed by one head's scores at a time, for every code width, head count and dimension.
     */
    @Test
    void packedScoresOfAGroupEqualUnpackThenScoreEachHead() {
        long seed = TestSeeds.seed("codec-packed-scores");
        SplittableRandom r = TestSeeds.random(seed);
        List<Family> families = Codecs.families();
        CodecKernel scalar = CodecKernels.scalar();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(16 * 140);
            for (int trial = 0; trial < 200; trial++) {
                int bits = new int[] {8, 4, 2}[r.nextInt(3)];
                int planes = 8 / bits;
                int d = 1 + r.nextInt(130);
                int units = (d + planes - 1) / planes;
                int heads = 1 + r.nextInt(9);
                int qStride = d + r.nextInt(3);
                long offset = 16L * r.nextInt(4);
                for (int i = 0; i < seg.byteSize(); i++) {
                    seg.set(ValueLayout.JAVA_BYTE, i, (byte) r.nextInt(256));
                }
                float[] q = TestSeeds.floats(r, heads * qStride, 3);
                float[] bias = TestSeeds.floats(r, heads, 2);
                float[] codes = new float[units * planes * 16];
                scalar.unpack(seg, offset, bits, units, codes, 0);
                float[] want = new float[heads * 16];
                for (int h = 0; h < heads; h++) {
                    scalar.scores(q, h * qStride, d, codes, bias[h], want, h * 16);
                }
                for (Family f : families) {
                    float[] got = new float[heads * 16];
                    f.codec().scoresPacked(seg, offset, bits, q, qStride, bias, heads, d, got);
                    for (int e = 0; e < want.length; e++) {
                        assertEquals(
                                Float.floatToRawIntBits(want[e]),
                                Float.floatToRawIntBits(got[e]),
                                f + " bits " + bits + " d=" + d + " heads " + heads + " element " + e + " seed="
                                        + seed);
                    }
                }
            }
        }
    }

    /** Value accumulation for a group of heads, in every family, against the documented chains written out here. */
    @Test
    void valueAccumulationFollowsTheDocumentedChains() {
        long seed = TestSeeds.seed("codec-accumulate");
        SplittableRandom r = TestSeeds.random(seed);
        List<Family> families = Codecs.families();
        for (int trial = 0; trial < 200; trial++) {
            int d = 1 + r.nextInt(130);
            int gc = r.nextBoolean() ? 1 + r.nextInt(d) : Math.min(d, 8 << r.nextInt(3));
            int groups = (d + gc - 1) / gc;
            int nb = 1 + r.nextInt(16);
            int heads = 1 + r.nextInt(9);
            int vStride = d + r.nextInt(5);
            float[] v = TestSeeds.floats(r, 16 * vStride, 8);
            float[] p = TestSeeds.floats(r, heads * 16, 1);
            float[] scales = TestSeeds.floats(r, 16 * groups, 1);
            float[] zeros = r.nextBoolean() ? TestSeeds.floats(r, 16 * groups, 2) : null;
            float[] acc0 = TestSeeds.floats(r, heads * d, 1);
            float[] want = acc0.clone();
            for (int h = 0; h < heads; h++) {
                for (int c = 0; c < d; c++) {
                    int g = c / gc;
                    float a = want[h * d + c];
                    for (int j = 0; j < nb; j++) {
                        float w = p[h * 16 + j] * scales[j * groups + g];
                        a = Math.fma(w, v[j * vStride + c], a);
                    }
                    if (zeros != null) {
                        float zb = 0f;
                        for (int j = 0; j < nb; j++) {
                            zb = Math.fma(p[h * 16 + j], zeros[j * groups + g], zb);
                        }
                        a += zb;
                    }
                    want[h * d + c] = a;
                }
            }
            for (Family f : families) {
                float[] got = acc0.clone();
                f.codec().accumulateValues(got, heads, d, gc, v, vStride, p, scales, zeros, nb);
                for (int e = 0; e < want.length; e++) {
                    assertEquals(
                            Float.floatToRawIntBits(want[e]),
                            Float.floatToRawIntBits(got[e]),
                            f + " d=" + d + " gc=" + gc + " heads " + heads + " nb " + nb + " zeros " + (zeros != null)
                                    + " element " + e + " seed=" + seed);
                }
            }
        }
    }
}
