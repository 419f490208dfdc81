package io.kvcache4j.eval.gguf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.kvcache4j.FreshJvm;
import io.kvcache4j.TestSeeds;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Weight products (and so the engine's logits) have the same bits from the first call on, whatever
 * the JIT tier or the thread count: {@link WeightDeterminismWorkload} computed on its first call in
 * a fresh JVM — purely interpreted ({@code -Xint}: every Vector API operation runs its Java
 * fallback), stopped at C1, or cold on four threads with a four-thread common pool for the
 * row-parallel path — must have the bits that the same products have in this JVM once C2 has
 * compiled the kernel. In the run with the Vector API both twins are checked; without it, the scalar
 * one.
 */
class WeightKernelDeterminismTest {
    private static final long CHILD_TIMEOUT_SECONDS = 300;
    private static final long WARM_UP_LIMIT_NANOS = TimeUnit.SECONDS.toNanos(120);
    private static final int HOT_CALLS = 2500;
    private static final int ROUNDS_AFTER_C2 = 10;
    private static final String POOL_OF_FOUR = "-Djava.util.concurrent.ForkJoinPool.common.parallelism=4";

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"-Xint", "-XX:TieredStopAtLevel=1"})
    void firstCallsInAFreshJvmHaveTheBitsOfCompiledCode(String tierFlag, @TempDir Path dir) throws Exception {
        long seed = TestSeeds.seed("weights fresh-jvm " + tierFlag);
        Map<String, float[]> child = child(dir, seed, List.of(tierFlag, POOL_OF_FOUR), "serial");
        assertEqualsWhileWarmingUp(child, seed, tierFlag);
    }

    @Test
    void coldStartOnFourThreadsHasTheBitsOfCompiledCode(@TempDir Path dir) throws Exception {
        long seed = TestSeeds.seed("weights fresh-jvm parallel");
        Map<String, float[]> child = child(dir, seed, List.of(POOL_OF_FOUR), "parallel");
        assertEqualsWhileWarmingUp(child, seed, "cold, 16 tasks on 4 threads");
    }

    @Test
    void sixteenTasksOnFourThreadsHaveTheSerialBits() throws Exception {
        long seed = TestSeeds.seed("weights threads");
        long rowParallel = WeightDeterminismWorkload.cases().stream()
                .filter(c -> (long) c.rows() * c.cols() * WeightDeterminismWorkload.TOKENS
                        >= MappedWeightMatrix.PARALLEL_THRESHOLD)
                .count();
        assertEquals(2, rowParallel, "cases whose matmul splits rows over the common pool");
        for (WeightKernel k : WeightDeterminismWorkload.kernels()) {
            Map<String, float[]> serial = WeightDeterminismWorkload.serial(k, seed);
            for (int round = 0; round < 3; round++) {
                assertSameBits(serial, WeightDeterminismWorkload.parallel(k, seed), k.name() + " round " + round, seed);
            }
        }
    }

    private static Map<String, float[]> child(Path dir, long seed, List<String> flags, String mode) throws Exception {
        Path file = dir.resolve("bits");
        String kernel = WeightKernels.activeName();
        List<String> all = new ArrayList<>(flags);
        all.add("-D" + WeightKernels.PROPERTY + "=" + kernel);
        String console = FreshJvm.run(
                WeightDeterminismWorkload.class,
                all,
                List.of(file.toString(), Long.toString(seed), mode),
                CHILD_TIMEOUT_SECONDS);
        System.out.println("[child " + all + " " + mode + "] " + console.strip().replace("\n", "\n  "));
        Map<String, float[]> bits = FreshJvm.readBits(file);
        assertTrue(
                bits.containsKey("kernel:" + kernel), "child used another kernel: " + bits.keySet() + "\n" + console);
        bits.remove("kernel:" + kernel);
        return bits;
    }

    /**
     * Computes the products here round after round, each round also {@value #HOT_CALLS} row
     * products per weight type (so that every type's code gets hot, not only the one with the
     * largest matrices), until C2 has compiled the kernels' {@code dot} and {@code dotRowsTokens} and
     * the workload's per-case method, then {@value #ROUNDS_AFTER_C2} rounds more, by which time any
     * per-type method not inlined into {@code dot} has passed C2's invocation threshold too. Every
     * round, the early ones included, must have the child's bits, and every hot row product the
     * bits of its first call here.
     */
    private static void assertEqualsWhileWarmingUp(Map<String, float[]> child, long seed, String what) {
        List<WeightKernel> kernels = WeightDeterminismWorkload.kernels();
        long start = System.nanoTime();
        int rounds = 0;
        int roundsCompiled = 0;
        try (Arena arena = Arena.ofShared()) {
            List<HotRow> hot = new ArrayList<>();
            SplittableRandom r = TestSeeds.random(seed);
            for (WeightKernel k : kernels) {
                for (GgmlType t : WeightMatrixTest.TYPES) {
                    hot.add(new HotRow(arena, k, t, r));
                }
            }
            while (roundsCompiled < ROUNDS_AFTER_C2) {
                Map<String, float[]> here = new LinkedHashMap<>();
                for (WeightKernel k : kernels) {
                    WeightDeterminismWorkload.serial(k, seed)
                            .forEach((name, bits) -> here.put(k.name() + "/" + name, bits));
                }
                assertSameBits(child, here, what + " vs this JVM, round " + rounds, seed);
                for (HotRow h : hot) {
                    h.check(what + " round " + rounds + " seed=" + seed);
                }
                rounds++;
                if (kernels.stream().allMatch(WeightKernelDeterminismTest::compiledByC2)) {
                    roundsCompiled++;
                } else if (System.nanoTime() - start > WARM_UP_LIMIT_NANOS) {
                    fail("C2 has not compiled the weight kernels after " + rounds + " rounds; C2 code: "
                            + FreshJvm.compiledMethods("io.kvcache4j.eval.gguf.", 4));
                }
            }
        }
        for (WeightKernel k : kernels) {
            System.out.println("[warm] " + what + ": " + rounds + " rounds equal; C2 code: "
                    + FreshJvm.compiledMethods(k.getClass().getName() + ".", 4));
        }
    }

    /** One row of one block (or 64 elements) of a type, multiplied again and again. */
    private static final class HotRow {
        final MappedWeightMatrix w;
        final float[] x;
        final float first;

        HotRow(Arena arena, WeightKernel k, GgmlType t, SplittableRandom r) {
            int cols = Math.max(64, t.blockSize());
            w = WeightMatrixTest.matrix(arena, t, WeightMatrixTest.randomRows(r, t, 1, cols), 1, cols, k);
            x = TestSeeds.floats(r, cols, 2f);
            first = w.dotRow(0, x, 0);
        }

        void check(String what) {
            for (int i = 0; i < HOT_CALLS; i++) {
                float y = w.dotRow(0, x, 0);
                if (Float.floatToRawIntBits(y) != Float.floatToRawIntBits(first)) {
                    fail(w.type() + " row product changed from " + Float.toHexString(first) + " to "
                            + Float.toHexString(y) + " at call " + i + ", " + what);
                }
            }
        }
    }

    private static boolean compiledByC2(WeightKernel k) {
        return FreshJvm.compiledByC2(declaringClass(k, "dot") + ".dot(")
                && FreshJvm.compiledByC2(matmulMethod(k))
                && FreshJvm.compiledByC2(WeightDeterminismWorkload.class.getName() + ".run(");
    }

    /**
     * The method doing a matmul's work: the kernel's own {@code dotRowsTokens}, or, where it keeps
     * the interface's (a loop that C2 inlines into its caller), the {@code dotTokens} it calls.
     */
    private static String matmulMethod(WeightKernel k) {
        String rows = declaringClass(k, "dotRowsTokens");
        return rows.equals(WeightKernel.class.getName())
                ? declaringClass(k, "dotTokens") + ".dotTokens("
                : rows + ".dotRowsTokens(";
    }

    /** The class whose code runs for {@code k.method(...)}: the kernel's own, or the interface's default. */
    private static String declaringClass(WeightKernel k, String method) {
        for (Class<?> c = k.getClass(); c != null; c = c.getSuperclass()) {
            for (java.lang.reflect.Method m : c.getDeclaredMethods()) {
                if (m.getName().equals(method)) {
                    return c.getName();
                }
            }
        }
        return WeightKernel.class.getName();
    }

    private static void assertSameBits(Map<String, float[]> want, Map<String, float[]> got, String what, long seed) {
        assertEquals(want.keySet(), got.keySet(), what);
        List<String> differing = new ArrayList<>();
        int floats = 0;
        for (Map.Entry<String, float[]> e : want.entrySet()) {
            int n = FreshJvm.countDifferences(e.getValue(), got.get(e.getKey()));
            if (n > 0) {
                int i = FreshJvm.firstDifference(e.getValue(), got.get(e.getKey()));
                differing.add(e.getKey() + " (" + n + " floats, first [" + i + "])");
                floats += n;
            }
        }
        assertTrue(
                differing.isEmpty(),
                what + ": " + floats + " floats differ in " + differing.size() + " of " + want.size() + " arrays "
                        + differing + "; seed=" + seed);
    }
}
