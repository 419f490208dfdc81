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
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code bin/kvcache4j generate}: streams a completion and reports prefill and decode speed. Every
 * option is checked before the model is loaded; the budget is checked again against the prompt's
 * length once the prompt is tokenized, before the first forward pass.
 */
@Command(
        name = "generate",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        usageHelpWidth = 100,
        sortOptions = false,
        sortSynopsis = false,
        description = "Streams a completion of a prompt through the KV cache and reports prefill and decode speed.")
final class GenerateCommand implements Callable<Integer> {
    /** Most tokens one generation may produce. */
    static final int MAX_TOKENS = 1 << 20;
    /** Largest prefill chunk. */
    static final int MAX_CHUNK = 1 << 16;

    private final PrintStream out;
    private final PrintStream err;

    GenerateCommand(PrintStream out, PrintStream err) {
        this.out = out;
        this.err = err;
    }

    @Option(
            names = "--model",
            paramLabel = "FILE",
            description = "GGUF model (default: the shipped model/kvcache4j-niah.gguf).")
    Path model;

    @Option(names = "--prompt", paramLabel = "TEXT", required = true, description = "The prompt.")
    String prompt;

    @Option(
            names = "--max-tokens",
            paramLabel = "N",
            defaultValue = "64",
            converter = Converters.MaxTokens.class,
            description = "Tokens generated at most, in [1, " + MAX_TOKENS + "] (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(
            names = "--policy",
            paramLabel = "NAME",
            defaultValue = "full",
            converter = Converters.Policy.class,
            completionCandidates = NiahCommand.PolicyNames.class,
            description = "Eviction policy; installed: ${COMPLETION-CANDIDATES} (default: ${DEFAULT-VALUE}).")
    String policy;

    @Option(
            names = "--budget",
            paramLabel = "X",
            defaultValue = "0.5",
            converter = Converters.BudgetSpec.class,
            description = "Budget of every policy but full: a fraction of the prompt in (0, 1) or whole tokens per"
                    + " (layer, KV head), enough for the sinks, the recent window and one more token"
                    + " (default: ${DEFAULT-VALUE}).")
    Budget budget;

    @Option(
            names = "--temperature",
            paramLabel = "T",
            defaultValue = "0",
            converter = Converters.Temperature.class,
            description = "0 for greedy decoding, else the sampling temperature (default: ${DEFAULT-VALUE}).")
    float temperature;

    @Option(
            names = "--seed",
            paramLabel = "N",
            defaultValue = "1",
            converter = Converters.Seed.class,
            description = "Seed of the sampling (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(
            names = "--dtype",
            paramLabel = "TYPE",
            defaultValue = "f16",
            converter = Converters.DType.class,
            description = "KV storage: f32, f16 or bf16 (default: ${DEFAULT-VALUE}).")
    KvDType dtype;

    @Option(
            names = "--chunk",
            paramLabel = "N",
            defaultValue = "256",
            converter = Converters.Chunk.class,
            description = "Prefill chunk in tokens, in [1, " + MAX_CHUNK + "] (default: ${DEFAULT-VALUE}).")
    int chunk;

    @Option(names = "--no-bos", description = "Do not add BOS even if the vocabulary asks for it.")
    boolean noBos;

    @Override
    public Integer call() throws Exception {
        if (prompt.isEmpty()) {
            throw new BadOption("--prompt", "--prompt must not be empty");
        }
        if (!budget.isFraction() && !policy.equals("full")) {
            // A budget in tokens can be checked against the policy before the model is loaded.
            try {
                EvictionPolicies.create(policy, budget);
            } catch (IllegalArgumentException e) {
                throw new BadOption("--budget", "--budget " + budget + " for policy " + policy + ": " + e.getMessage());
            }
        }
        Path modelPath = ModelFiles.modelOrShipped(model);
        try (GgufLlama llama = GgufLlama.open(modelPath)) {
            Tokenizer tok = Tokenizer.fromGguf(llama.model());
            int[] ids = tok.encode(prompt, !noBos && tok.addBos(), true);
            if (ids.length == 0) {
                throw new BadOption("--prompt", "--prompt encodes to no tokens");
            }
            LlamaEngine engine = new LlamaEngine(llama, chunk);
            EvictionPolicy evictionPolicy;
            try {
                evictionPolicy = EvictionPolicies.create(
                        policy,
                        policy.equals("full") ? Budget.tokens(Math.max(6, ids.length)) : budget.resolve(ids.length));
            } catch (IllegalArgumentException e) {
                throw new BadOption(
                        "--budget",
                        "--budget " + budget + " for a prompt of " + ids.length + " tokens: " + e.getMessage());
            }
            SplittableRandom random = new SplittableRandom(seed);
            try (KvCache cache = KvCache.builder(llama.config().cacheShape())
                    .dtype(dtype)
                    .policy(evictionPolicy)
                    .attentionPool(io.kvcache4j.eval.llama.Parallel.attentionPool())
                    .build()) {
                long t0 = System.nanoTime();
                float[] logits = engine.forward(ids, 0, ids.length, cache);
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
                        ids.length,
                        (t1 - t0) / 1e9,
                        ids.length / ((t1 - t0) / 1e9),
                        n,
                        (t2 - t1) / 1e9,
                        n == 0 ? 0 : n / ((t2 - t1) / 1e9),
                        cache.policyName(),
                        cache.bytesHeld());
            }
        }
        return Main.EXIT_OK;
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
