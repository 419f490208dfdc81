package io.kvcache4j.eval.cli;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.eval.llama.Generation;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.llama.LlamaEngine;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/** {@code bin/kvcache4j generate}: streams a completion and reports prefill and decode speed. */
final class GenerateCommand implements Command {
    GenerateCommand() {}

    @Override
    public String name() {
        return "generate";
    }

    @Override
    public String summary() {
        return "--model FILE --prompt TEXT [--max-tokens N] [--policy NAME --budget X] [--temperature T] [--seed N] [--dtype f16]";
    }

    @Override
    public int run(String[] argv, PrintStream out) throws Exception {
        Args a = new Args(
                argv,
                List.of(
                        "--model",
                        "--prompt",
                        "--max-tokens",
                        "--policy",
                        "--budget",
                        "--temperature",
                        "--seed",
                        "--dtype",
                        "--chunk"),
                List.of("--no-bos"));
        if (a.get("--prompt") == null) {
            throw new UsageException("--prompt TEXT is required");
        }
        int maxTokens = a.getInt("--max-tokens", 64, 1, 1 << 20);
        float temperature;
        try {
            temperature = Float.parseFloat(a.get("--temperature", "0"));
        } catch (NumberFormatException e) {
            throw new UsageException("--temperature must be a number >= 0, was '" + a.get("--temperature") + "'");
        }
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new UsageException("--temperature must be a finite number >= 0, was " + temperature);
        }
        KvDType dtype;
        Budget budget;
        String policyName = a.get("--policy", "full");
        try {
            dtype = KvDType.parse(a.get("--dtype", "f16"));
            EvictionPolicies.provider(policyName);
        } catch (IllegalArgumentException e) {
            throw new UsageException(e.getMessage());
        }
        try {
            budget = Budget.parse(a.get("--budget", "0.5"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--budget " + a.get("--budget", "0.5") + ": " + e.getMessage());
        }
        int chunk = a.getInt("--chunk", 256, 1, 1 << 16);
        long seed = a.getLong("--seed", 1);
        try (GgufLlama model = GgufLlama.open(
                a.get("--model") == null ? ModelFiles.shippedModel() : ModelFiles.existing(a.get("--model")))) {
            Tokenizer tok = Tokenizer.fromGguf(model.model());
            int[] prompt = tok.encode(a.get("--prompt"), !a.has("--no-bos") && tok.addBos(), true);
            if (prompt.length == 0) {
                throw new UsageException("the prompt encodes to no tokens");
            }
            LlamaEngine engine = new LlamaEngine(model, chunk);
            EvictionPolicy policy;
            try {
                policy = EvictionPolicies.create(
                        policyName,
                        policyName.equals("full")
                                ? Budget.tokens(Math.max(6, prompt.length))
                                : budget.resolve(prompt.length));
            } catch (IllegalArgumentException e) {
                throw new UsageException(
                        "--budget " + budget + " for a prompt of " + prompt.length + " tokens: " + e.getMessage());
            }
            SplittableRandom random = new SplittableRandom(seed);
            PrintStream err = System.err;
            try (KvCache cache = KvCache.builder(model.config().cacheShape())
                    .dtype(dtype)
                    .policy(policy)
                    .build()) {
                long t0 = System.nanoTime();
                float[] logits = engine.forward(prompt, 0, prompt.length, cache);
                cache.endPrefill();
                long t1 = System.nanoTime();
                int[] generated = new int[maxTokens];
                byte[][] pending = {new byte[0]};
                Generation.Sampler sampler = temperature == 0
                        ? LlamaEngine::argmax
                        : l -> LlamaEngine.sample(l, temperature, random.nextDouble());
                int n = Generation.run(
                                engine,
                                cache,
                                logits,
                                sampler,
                                tok::isEndOfGeneration,
                                (t, gen, count) -> {
                                    // Stream complete UTF-8 sequences as they arrive.
                                    byte[] buf = concat(pending[0], tok.tokenPiece(t, false));
                                    int complete = completeUtf8Prefix(buf);
                                    out.print(new String(buf, 0, complete, StandardCharsets.UTF_8));
                                    out.flush();
                                    pending[0] = Arrays.copyOfRange(buf, complete, buf.length);
                                    return false;
                                },
                                generated)
                        .tokens();
                long t2 = System.nanoTime();
                out.println(new String(pending[0], StandardCharsets.UTF_8));
                err.printf(
                        Locale.ROOT,
                        "prefill: %d tokens in %.3f s (%.1f tokens/s); decode: %d tokens in %.3f s (%.1f tokens/s);"
                                + " policy %s, KV bytes held %d%n",
                        prompt.length,
                        (t1 - t0) / 1e9,
                        prompt.length / ((t1 - t0) / 1e9),
                        n,
                        (t2 - t1) / 1e9,
                        n == 0 ? 0 : n / ((t2 - t1) / 1e9),
                        cache.policyName(),
                        cache.bytesHeld());
            }
        }
        return 0;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    /** Length of the longest prefix of {@code b} that ends on a UTF-8 character boundary. */
    static int completeUtf8Prefix(byte[] b) {
        int n = b.length;
        for (int back = 1; back <= Math.min(3, n); back++) {
            int lead = b[n - back] & 0xFF;
            if ((lead & 0xC0) == 0x80) {
                continue;
            }
            int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            return need > back ? n - back : n;
        }
        return n;
    }
}
