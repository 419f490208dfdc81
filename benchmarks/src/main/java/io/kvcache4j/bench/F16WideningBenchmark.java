package io.kvcache4j.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The candidates for widening binary16 to float on this JDK, on one attention block's worth of
 * elements (16 keys × 128 dimensions = 2,048 values, L1-resident), each writing the floats to a heap
 * array:
 *
 * <ul>
 *   <li>{@code vectorBitTrick}: the attention kernel's Vector API widening ({@code S2I} shape
 *       conversion, shift by 13, sign/exponent/mantissa mask, reinterpret, multiply by 2<sup>112</sup>;
 *       exact for finite values);
 *   <li>{@code float16ToFloatHeap}: {@link Float#float16ToFloat} over a {@code short[]} in a plain
 *       loop, which C2 may intrinsify and auto-vectorize ({@code vcvtph2ps});
 *   <li>{@code float16ToFloatSegment}: the same loop reading the off-heap page the store keeps;
 *   <li>{@code scalarBitTrick}: the scalar twin's widening, the baseline.
 * </ul>
 *
 * Every candidate is checked bit for bit against {@link Float#float16ToFloat} in setup.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class F16WideningBenchmark {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S =
            VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final ValueLayout.OfShort SHORT =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Elements widened per call. */
    @Param({"2048"})
    public int elements;

    short[] halves;
    MemorySegment page;
    float[] dst;
    private Arena arena;

    @Setup(Level.Trial)
    public void setup() {
        if (S.length() != F.length()) {
            throw new IllegalStateException("no short species with " + F.length() + " lanes");
        }
        SplittableRandom r = new SplittableRandom(11);
        halves = new short[elements];
        arena = Arena.ofConfined();
        page = arena.allocate(2L * elements, 64);
        dst = new float[elements];
        for (int i = 0; i < elements; i++) {
            halves[i] = Float.floatToFloat16((float) (r.nextGaussian() * 4));
            page.setAtIndex(SHORT, i, halves[i]);
        }
        for (Runnable candidate : new Runnable[] {
            this::vectorBitTrick, this::float16ToFloatHeap, this::float16ToFloatSegment, this::scalarBitTrick
        }) {
            java.util.Arrays.fill(dst, Float.NaN);
            candidate.run();
            for (int i = 0; i < elements; i++) {
                if (Float.floatToRawIntBits(dst[i]) != Float.floatToRawIntBits(Float.float16ToFloat(halves[i]))) {
                    throw new IllegalStateException("a widening candidate differs at element " + i);
                }
            }
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public float[] vectorBitTrick() {
        int n = elements;
        for (int i = 0; i < n; i += F.length()) {
            ((IntVector) ShortVector.fromMemorySegment(S, page, 2L * i, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 13)
                    .and(0x8FFFE000)
                    .reinterpretAsFloats()
                    .mul(0x1.0p112f)
                    .intoArray(dst, i);
        }
        return dst;
    }

    @Benchmark
    public float[] float16ToFloatHeap() {
        short[] src = halves;
        float[] out = dst;
        for (int i = 0; i < out.length; i++) {
            out[i] = Float.float16ToFloat(src[i]);
        }
        return out;
    }

    @Benchmark
    public float[] float16ToFloatSegment() {
        MemorySegment src = page;
        float[] out = dst;
        for (int i = 0; i < out.length; i++) {
            out[i] = Float.float16ToFloat(src.getAtIndex(SHORT, i));
        }
        return out;
    }

    @Benchmark
    public float[] scalarBitTrick() {
        float[] out = dst;
        for (int i = 0; i < out.length; i++) {
            int h = page.getAtIndex(SHORT, i);
            out[i] = Float.intBitsToFloat((h << 13) & 0x8FFFE000) * 0x1.0p112f;
        }
        return out;
    }
}
