package io.kvcache4j.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvcache4j.FreshJvm;
import io.kvcache4j.TestSeeds;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Results are bit-identical from the first call on, whatever the JIT tier or the thread count: the
 * grid of {@link DeterminismWorkload} (every storage type, GQA groups 1, 2 and 4, head dimensions
 * 13, 64 and 128, token counts around the 16-key block, logit record and mass on) computed on its
 * first call in a fresh JVM — purely interpreted ({@code -Xint}, where every Vector API operation
 * runs its Java fallback), stopped at C1, or cold on four threads — must have the bits that the same
 * computation has in this JVM once C2 has compiled the kernel. In the run with the Vector API both
 * kernels are checked; in the run without it, the scalar twin (the child then uses it too).
 */
class KernelDeterminismTest {
    private static final long CHILD_TIMEOUT_SECONDS = 300;
    private static final long WARM_UP_LIMIT_NANOS = TimeUnit.SECONDS.toNanos(120);
    private static final int ROUNDS_AFTER_C2 = 20;

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"-Xint", "-XX:TieredStopAtLevel=1"})
    void firstCallsInAFreshJvmHaveTheBitsOfCompiledCode(String tierFlag, @TempDir Path dir) throws Exception {
        long seed = TestSeeds.seed("fresh-jvm " + tierFlag);
        Map<String, float[]> child = child(dir, seed, tierFlag, "serial");
        assertEqualsWhileWarmingUp(child, seed, tierFlag);
    }

    @Test
    void coldStartOnFourThreadsHasTheBitsOfCompiledCode(@TempDir Path dir) throws Exception {
        long seed = TestSeeds.seed("fresh-jvm parallel");
        Map<String, float[]> child = child(dir, seed, null, "parallel");
        assertEqualsWhileWarmingUp(child, seed, "cold, 16 tasks on 4 threads");
    }

    @Test
    void sixteenTasksOnFourThreadsHaveTheSerialBits() throws Exception {
        long seed = TestSeeds.seed("threads");
        for (AttentionKernel k : DeterminismWorkload.kernels()) {
            Map<String, float[]> serial = DeterminismWorkload.serial(k, seed);
            for (int round = 0; round < 3; round++) {
                assertSameBits(serial, DeterminismWorkload.parallel(k, seed), k.name() + " round " + round, seed);
            }
        }
    }

    /**
     * With a group that is a multiple of four, the Vector API kernel computes scores, softmax
     * weights and their sums (the same exp, the same lane-wise running sums, the same final order),
     * the weighted values and the mass in the scalar twin's order, so the two agree to the bit, not
     * just to a tolerance.
     */
    @Test
    void twinsAgreeBitForBitWhereTheyAddInTheSameOrder() {
        AttentionKernel active = AttentionKernels.get();
        assumeTrue(active != AttentionKernels.scalar(), "only the scalar kernel is available in this run");
        long seed = TestSeeds.seed("twins-bitwise");
        int compared = 0;
        for (DeterminismWorkload.Case c : DeterminismWorkload.cases()) {
            if (c.group() % 4 != 0) {
                continue;
            }
            float[] v = DeterminismWorkload.run(active, c, seed);
            float[] s = DeterminismWorkload.run(AttentionKernels.scalar(), c, seed);
            assertEquals(
                    -1,
                    FreshJvm.firstDifference(v, s),
                    c + ": " + FreshJvm.countDifferences(v, s) + " of " + v.length + " floats differ, seed=" + seed);
            compared++;
        }
        long groupsOfFour = java.util.Arrays.stream(DeterminismWorkload.GROUPS)
                .filter(g -> g % 4 == 0)
                .count();
        assertEquals(DeterminismWorkload.cases().size() / DeterminismWorkload.GROUPS.length * groupsOfFour, compared);
    }

    private static Map<String, float[]> child(Path dir, long seed, String tierFlag, String mode) throws Exception {
        Path file = dir.resolve("bits");
        String kernel = AttentionKernels.get().name();
        List<String> flags = tierFlag == null
                ? List.of("-D" + AttentionKernels.PROPERTY + "=" + kernel)
                : List.of(tierFlag, "-D" + AttentionKernels.PROPERTY + "=" + kernel);
        String console = FreshJvm.run(
                DeterminismWorkload.class,
                flags,
                List.of(file.toString(), Long.toString(seed), mode),
                CHILD_TIMEOUT_SECONDS);
        System.out.println(
                "[child " + flags + " " + mode + "] " + console.strip().replace("\n", "\n  "));
        Map<String, float[]> bits = FreshJvm.readBits(file);
        assertTrue(
                bits.containsKey("kernel:" + kernel), "child used another kernel: " + bits.keySet() + "\n" + console);
        bits.remove("kernel:" + kernel);
        return bits;
    }

    /**
     * Computes the grid here round after round until C2 has compiled the kernels' {@code scan} and
     * the workload's per-case method, then {@value #ROUNDS_AFTER_C2} rounds more, by which time the
     * helpers that {@code scan} and {@code mass} call without inlining have passed C2's invocation
     * threshold too. Every round, the early ones included, must have the child's bits.
     */
    private static void assertEqualsWhileWarmingUp(Map<String, float[]> child, long seed, String what) {
        List<AttentionKernel> kernels = DeterminismWorkload.kernels();
        long start = System.nanoTime();
        int rounds = 0;
        int roundsCompiled = 0;
        while (roundsCompiled < ROUNDS_AFTER_C2) {
            Map<String, float[]> here = new LinkedHashMap<>();
            for (AttentionKernel k : kernels) {
                DeterminismWorkload.serial(k, seed).forEach((name, bits) -> here.put(k.name() + "/" + name, bits));
            }
            assertSameBits(child, here, what + " vs this JVM, round " + rounds, seed);
            rounds++;
            if (kernels.stream().allMatch(KernelDeterminismTest::compiledByC2)) {
                roundsCompiled++;
            } else if (System.nanoTime() - start > WARM_UP_LIMIT_NANOS) {
                fail("C2 has not compiled the kernels after " + rounds + " rounds; C2 code: "
                        + FreshJvm.compiledMethods("io.kvcache4j.attention.", 4));
            }
        }
        for (AttentionKernel k : kernels) {
            System.out.println("[warm] " + what + ": " + rounds + " rounds equal; C2 code: "
                    + FreshJvm.compiledMethods(k.getClass().getName() + ".", 4));
        }
    }

    /**
     * Whether C2 has compiled the workload's per-case method, whose C2 code holds or calls {@code
     * scan} and {@code mass}, and the kernel's {@code scan} or, where C2 inlined {@code scan} into that
     * method (it then has no code of its own), the {@code softmaxBlock} that every scan calls.
     */
    private static boolean compiledByC2(AttentionKernel k) {
        String kernel = k.getClass().getName();
        return FreshJvm.compiledByC2(DeterminismWorkload.class.getName() + ".run(")
                && (FreshJvm.compiledByC2(kernel + ".scan(") || FreshJvm.compiledByC2(kernel + ".softmaxBlock("));
    }

    static void assertSameBits(Map<String, float[]> want, Map<String, float[]> got, String what, long seed) {
        assertEquals(want.keySet(), got.keySet(), what);
        int arrays = 0;
        int floats = 0;
        StringBuilder first = new StringBuilder();
        java.util.List<String> names = new java.util.ArrayList<>();
        for (Map.Entry<String, float[]> e : want.entrySet()) {
            float[] w = e.getValue();
            float[] g = got.get(e.getKey());
            int n = FreshJvm.countDifferences(w, g);
            if (n > 0) {
                if (arrays == 0) {
                    int i = FreshJvm.firstDifference(w, g);
                    first.append(e.getKey())
                            .append(" [")
                            .append(i)
                            .append("]: ")
                            .append(i < w.length ? Float.toHexString(w[i]) : "-")
                            .append(" vs ")
                            .append(i < g.length ? Float.toHexString(g[i]) : "-");
                }
                arrays++;
                floats += n;
                names.add(e.getKey());
            }
        }
        if (arrays > 0) {
            fail(what + ": " + floats + " floats in " + arrays + " of " + want.size() + " arrays differ; first: "
                    + first + "; seed=" + seed);
        }
    }
}
