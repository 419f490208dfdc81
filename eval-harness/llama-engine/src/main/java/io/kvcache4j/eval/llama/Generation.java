package io.kvcache4j.eval.llama;

import io.kvcache4j.api.KvCache;
import java.util.function.IntPredicate;

/**
 * The one generation loop after a prompt, shared by the command line's {@code generate} and the NIAH
 * harness: pick a token from the logits, stop at an end-of-generation token, hand the token to the
 * caller (who may stop here: an answer is complete), stop at the token limit, otherwise feed the token
 * through the engine for the next logits. Not thread-safe: one engine and cache per call.
 */
public final class Generation {
    private Generation() {}

    /** Picks the next token from the logits (greedy: {@link LlamaEngine#argmax}). */
    @FunctionalInterface
    public interface Sampler {
        int next(float[] logits);
    }

    /** Receives each generated token; returns {@code true} to stop after it. */
    @FunctionalInterface
    public interface Listener {
        boolean accept(int token, int[] generated, int count);
    }

    /**
     * How a generation ended.
     *
     * @param tokens tokens generated (in {@code generated[0..tokens)})
     * @param fed tokens fed back through the engine (and appended to the cache) after the prompt
     */
    public record Result(int tokens, int fed) {}

    /**
     * Generates up to {@code generated.length} tokens from {@code logits} (the prompt's last logits);
     * {@code stop} tokens end the generation without being kept.
     */
    public static Result run(
            LlamaEngine engine,
            KvCache cache,
            float[] logits,
            Sampler sampler,
            IntPredicate stop,
            Listener listener,
            int[] generated) {
        if (generated.length < 1) {
            throw new IllegalArgumentException("room for at least one token is needed, was " + generated.length);
        }
        int n = 0;
        int fed = 0;
        while (true) {
            int next = sampler.next(logits);
            if (stop.test(next)) {
                return new Result(n, fed);
            }
            generated[n++] = next;
            if (listener.accept(next, generated, n) || n == generated.length) {
                return new Result(n, fed);
            }
            logits = engine.forward(generated, n - 1, 1, cache);
            fed++;
        }
    }
}
