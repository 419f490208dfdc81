package io.kvcache4j.eval.gguf;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** ggml's reference quantizers and rounding rules, checked on hand-worked blocks and random data. */
class QuantsTest {
    private static byte[] quantize(GgmlType t, float[] v) {
        byte[] out = new byte[(int) t.bytesFor(v.length)];
        GgmlQuants.quantize(t, v, 0, v.length, out, 0);
        return out;
    }

    @Test
    void q8_0RoundsHalfAwayFromZeroWithScaleMaxOver127() {
        float[] v = new float[32];
        v[0] = 127f; // d = 1, codes are the values rounded
        v[1] = 2.5f;
        v[2] = -2.5f;
        v[3] = 0.49999997f;
        v[4] = -126.5f;
        byte[] b = quantize(GgmlType.Q8_0, v);
        assertEquals(Float.floatToFloat16(1f), (short) ((b[0] & 0xFF) | (b[1] << 8)));
        assertEquals(127, b[2]);
        assertEquals(3, b[3], "2.5 rounds away from zero");
        assertEquals(-3, b[4], "-2.5 rounds away from zero");
        assertEquals(0, b[5], "0.49999997 rounds down (no float add of 0.5)");
        assertEquals(-127, b[6]);
        assertArrayEquals(new byte[34], quantize(GgmlType.Q8_0, new float[32]), "all-zero block has d = 0");
    }

    @Test
    void q4_0UsesTheSignedMaximumAndTruncation() {
        float[] v = new float[32];
        v[0] = -8f; // the largest magnitude is negative: d = -8 / -8 = 1
        v[1] = 7f;
        v[16] = 3.4f;
        v[17] = -0.6f;
        byte[] b = quantize(GgmlType.Q4_0, v);
        assertEquals(Float.floatToFloat16(1f), (short) ((b[0] & 0xFF) | (b[1] << 8)));
        assertEquals(0, b[2] & 0x0F, "-8 -> code 0");
        assertEquals(11, (b[2] >>> 4) & 0x0F, "3.4 -> trunc(11.9) = 11");
        assertEquals(15, b[3] & 0x0F, "7 -> trunc(15.5) = 15");
        assertEquals(7, (b[3] >>> 4) & 0x0F, "-0.6 -> trunc(7.9) = 7");
        assertEquals(8, b[4] & 0x0F, "0 -> 8");
        float[] w = new float[32];
        w[5] = 8f; // positive maximum: d = -1, so +8 maps to code 0 and -8 would need code 16 -> clamped to 15
        w[6] = -8f;
        byte[] c = quantize(GgmlType.Q4_0, w);
        assertEquals(Float.floatToFloat16(-1f), (short) ((c[0] & 0xFF) | (c[1] << 8)));
        assertEquals(0, c[2 + 5] & 0x0F);
        assertEquals(15, c[2 + 6] & 0x0F);
    }

    @Test
    void quantizeThenDequantizeIsCloseAndMatchesTheReference() {
        long seed = TestSeeds.seed("quantize-roundtrip");
        SplittableRandom r = TestSeeds.random(seed);
        for (GgmlType t : new GgmlType[] {GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.F16, GgmlType.BF16, GgmlType.F32}) {
            float[] v = TestSeeds.floats(r, 32 * 9, 3f);
            byte[] b = quantize(t, v);
            float[] back = new float[v.length];
            GgmlQuants.dequantize(t, java.lang.foreign.MemorySegment.ofArray(b), 0, back, 0, v.length);
            double[] ref = ReferenceDequant.dequantize(t, b, 0, v.length, null);
            for (int i = 0; i < v.length; i++) {
                assertEquals(ref[i], back[i], Math.abs(ref[i]) * 1e-7, t + " i=" + i + " seed=" + seed);
                double step = switch (t) {
                    case Q8_0 -> 3.0 / 127 * 0.5 + 3e-3;
                    case Q4_0 -> 3.0 / 8 + 1e-2; // the code for +8·|d| is clamped to 15
                    case F16 -> Math.abs(v[i]) / 2048;
                    case BF16 -> Math.abs(v[i]) / 256;
                    default -> 0;
                };
                assertTrue(
                        Math.abs(v[i] - back[i]) <= step,
                        t + " i=" + i + " " + v[i] + " -> " + back[i] + " seed=" + seed);
            }
        }
    }

    @Test
    void bf16RoundsToNearestEvenAndKeepsNaNQuiet() {
        assertEquals((short) 0x3F80, GgmlQuants.floatToBf16(1f));
        assertEquals((short) 0x3F80, GgmlQuants.floatToBf16(Float.intBitsToFloat(0x3F808000)), "tie to even (down)");
        assertEquals((short) 0x3F82, GgmlQuants.floatToBf16(Float.intBitsToFloat(0x3F818000)), "tie to even (up)");
        assertEquals((short) 0x3F81, GgmlQuants.floatToBf16(Float.intBitsToFloat(0x3F808001)));
        assertTrue(Float.isNaN(GgmlQuants.bf16ToFloat(GgmlQuants.floatToBf16(Float.intBitsToFloat(0x7F800001)))));
        for (int h = 0; h < 65536; h++) {
            float f = GgmlQuants.bf16ToFloat((short) h);
            if (!Float.isNaN(f)) {
                assertEquals((short) h, GgmlQuants.floatToBf16(f));
            }
        }
    }

    @Test
    void halfConversionIsExactForEveryFiniteValue() {
        for (int h = 0; h < 65536; h++) {
            float f = GgmlQuants.halfToFloat((short) h);
            if (Float.isFinite(f)) {
                assertEquals(ReferenceDequant.half(new byte[] {(byte) h, (byte) (h >>> 8)}, 0), f, 0.0);
                assertEquals((short) h, GgmlQuants.floatToHalf(f));
            }
        }
    }
}
