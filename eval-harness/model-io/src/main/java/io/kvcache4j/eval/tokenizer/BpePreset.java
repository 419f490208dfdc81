package io.kvcache4j.eval.tokenizer;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The pre-tokenizers a byte-level BPE vocabulary can name in {@code tokenizer.ggml.pre}, with the
 * settings llama.cpp attaches to each: the split expressions, whether decoding cleans spaces before
 * punctuation, whether a word that is itself a token skips the merges, whether BOS is added by
 * default, and whether the BOS id defaults to none.
 */
record BpePreset(
        List<String> expressions, boolean cleanSpaces, boolean ignoreMerges, boolean addBos, boolean noDefaultBos) {

    private static final Map<String, BpePreset> BY_NAME = new TreeMap<>();

    static {
        BpePreset dflt = new BpePreset(
                List.of("[\\p{P}\\$\\+<=>\\^~\\|]+", PreTokenizer.GPT2, "\\p{N}+", "[0-9][0-9][0-9]"),
                true,
                false,
                false,
                false);
        BY_NAME.put("default", dflt);
        BY_NAME.put("", dflt);
        BpePreset llama3 = new BpePreset(List.of(PreTokenizer.LLAMA3), true, true, true, false);
        for (String n : List.of(
                "llama3",
                "llama-v3",
                "llama-bpe",
                "falcon3",
                "falcon-h1",
                "pixtral",
                "midm-2.0",
                "lfm2",
                "jina-v5-nano")) {
            BY_NAME.put(n, llama3);
        }
        BpePreset llama3Regex = new BpePreset(List.of(PreTokenizer.LLAMA3), true, false, false, false);
        BY_NAME.put("dbrx", llama3Regex);
        BY_NAME.put("smaug-bpe", llama3Regex);
        BpePreset chatglm = new BpePreset(List.of(PreTokenizer.LLAMA3), true, false, false, true);
        BY_NAME.put("glm4", chatglm);
        BY_NAME.put("chatglm-bpe", chatglm);
        BpePreset gpt2 = new BpePreset(List.of(PreTokenizer.GPT2), true, false, false, false);
        for (String n : List.of(
                "gpt-2",
                "phi-2",
                "jina-es",
                "jina-de",
                "gigachat",
                "jina-v2-es",
                "jina-v2-de",
                "a.x-4.0",
                "mellum",
                "exaone4",
                "mpt",
                "olmo")) {
            BY_NAME.put(n, gpt2);
        }
        BpePreset qwen2 = new BpePreset(List.of(PreTokenizer.QWEN2), false, false, false, false);
        for (String n : List.of("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2")) {
            BY_NAME.put(n, qwen2);
        }
        BpePreset qwen2Clean = new BpePreset(List.of(PreTokenizer.QWEN2), true, false, false, false);
        BY_NAME.put("megrez", qwen2Clean);
        BY_NAME.put("stablelm2", qwen2Clean);
        BpePreset starcoder = new BpePreset(List.of("\\p{N}", PreTokenizer.GPT2), true, false, false, false);
        for (String n : List.of("starcoder", "refact", "codeshell", "exaone", "minerva-7b")) {
            BY_NAME.put(n, starcoder);
        }
        BpePreset starcoderNoClean = new BpePreset(List.of("\\p{N}", PreTokenizer.GPT2), false, false, false, false);
        BY_NAME.put("command-r", starcoderNoClean);
        BY_NAME.put("smollm", starcoderNoClean);
        BY_NAME.put(
                "falcon",
                new BpePreset(
                        List.of("[\\p{P}\\$\\+<=>\\^~\\|`]+", PreTokenizer.GPT2, "[0-9][0-9][0-9]"),
                        true,
                        false,
                        false,
                        false));
    }

    /** The preset for {@code name}, or {@code null} when it is not supported. */
    static BpePreset forName(String name) {
        return BY_NAME.get(name);
    }

    /** Names this library supports. */
    static List<String> supportedNames() {
        return BY_NAME.keySet().stream().filter(s -> !s.isEmpty()).toList();
    }
}
