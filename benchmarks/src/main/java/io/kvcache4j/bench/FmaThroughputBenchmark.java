package io.kvcache4j.bench;

import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One core's vector multiply-add ceiling: twelve independent chains of fused multiply-adds at the
 * platform's preferred width, in registers, no memory traffic; the score is the time per FMA
 * instruction (one vector of {@code F.length()} lanes). Each chain is {@code a ← m·c + a}, the
 * running value the addend as in the attention kernels' {@code k.fma(q, acc)}, so every step is
 * one instruction with no register copy. Twelve chains cover FMA latency (4 cycles) times two
 * pipes with room to spare, so the time is the issue rate. The attention kernels' FMA
 * floor is their FMA count per token times this time, reported beside {@link
 * MemoryBandwidthBenchmark}'s read ceiling.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
public class FmaThroughputBenchmark {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int STEPS = 4096;
    private static final int CHAINS = 12;

    float[] seed;

    @Setup
    public void setup() {
        seed = new float[F.length()];
        for (int i = 0; i < seed.length; i++) {
            seed[i] = 0.01f * i;
        }
    }

    /** {@code STEPS × 12} FMAs; the reported time is per FMA instruction. */
    @Benchmark
    @OperationsPerInvocation(STEPS * CHAINS)
    public float fma() {
        FloatVector a0 = FloatVector.fromArray(F, seed, 0);
        FloatVector a1 = a0.add(1f);
        FloatVector a2 = a0.add(2f);
        FloatVector a3 = a0.add(3f);
        FloatVector a4 = a0.add(4f);
        FloatVector a5 = a0.add(5f);
        FloatVector a6 = a0.add(6f);
        FloatVector a7 = a0.add(7f);
        FloatVector a8 = a0.add(8f);
        FloatVector a9 = a0.add(9f);
        FloatVector a10 = a0.add(10f);
        FloatVector a11 = a0.add(11f);
        FloatVector m = FloatVector.broadcast(F, 0.999f);
        FloatVector c = FloatVector.broadcast(F, 0.001f);
        for (int i = 0; i < STEPS; i++) {
            a0 = m.fma(c, a0);
            a1 = m.fma(c, a1);
            a2 = m.fma(c, a2);
            a3 = m.fma(c, a3);
            a4 = m.fma(c, a4);
            a5 = m.fma(c, a5);
            a6 = m.fma(c, a6);
            a7 = m.fma(c, a7);
            a8 = m.fma(c, a8);
            a9 = m.fma(c, a9);
            a10 = m.fma(c, a10);
            a11 = m.fma(c, a11);
        }
        return a0.add(a1)
                .add(a2)
                .add(a3)
                .add(a4)
                .add(a5)
                .add(a6)
                .add(a7)
                .add(a8)
                .add(a9)
                .add(a10)
                .add(a11)
                .lane(1);
    }
}
