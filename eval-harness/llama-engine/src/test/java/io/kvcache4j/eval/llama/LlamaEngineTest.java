package io.kvcache4j.eval.llama;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class LlamaEngineTest {

    /**
     * The engine, chunked prefill plus decode steps through a real cache, against the float64 forward
     * pass. f32 storage differs only by float arithmetic; f16/bf16 also by rounding the stored K/V.
     */
    @ParameterizedTest
    @CsvSource({"F32, 5, false, 1e-4", "F32, 64, true, 1e-4", "F16, 7, false, 2e-2", "BF16, 3, true, 1e-1"})
    void logitsMatchTheFloat64Reference(KvDType dtype, int chunk, boolean ropeFactors, double bound) {
        long seed = 1234 + chunk;
        System.out.println("[seed] engine-vs-reference seed=" + seed);
        LlamaConfig c = new LlamaConfig(97, 48, 3, 6, 2, 8, 72, 1e-5f, 10000f, 1f, 128);
        RandomWeights w = new RandomWeights(c, seed, ropeFactors);
        SplittableRandom r = new SplittableRandom(seed);
        int n = 23;
        int[] tokens = new int[n];
        for (int i = 0; i < n; i++) {
            tokens[i] = r.nextInt(c.vocabSize());
        }
        double[][] ref = ReferenceLlama.logits(w, tokens);
        LlamaEngine engine = new LlamaEngine(w, chunk);
        double worst = 0;
        try (KvCache cache = KvCache.builder(c.cacheShape()).dtype(dtype).build()) {
            int prompt = 17;
            float[] logits = engine.forward(tokens, 0, prompt, cache);
            worst = Math.max(worst, relErr(logits, ref[prompt - 1]));
            for (int t = prompt; t < n; t++) {
                logits = engine.forward(tokens, t, 1, cache);
                worst = Math.max(worst, relErr(logits, ref[t]));
            }
        }
        System.out.printf(
                "%s chunk=%d ropeFactors=%s: max relative logit error %.3g (bound %.1g)%n",
                dtype, chunk, ropeFactors, worst, bound);
        assertTrue(worst <= bound, "max relative logit error " + worst + " > " + bound + " seed=" + seed);
    }

    static double relErr(float[] got, double[] want) {
        double num = 0;
        double den = 0;
        for (int i = 0; i < want.length; i++) {
            num = Math.max(num, Math.abs(got[i] - want[i]));
            den = Math.max(den, Math.abs(want[i]));
        }
        return num / den;
    }
}
