package io.kvcache4j.eval.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.eval.gguf.GgufArray;
import io.kvcache4j.eval.gguf.GgufFormatException;
import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.gguf.GgufWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Hand-worked tokenizations on small vocabularies written with {@link GgufWriter}. */
class TokenizerTest {
    @TempDir
    Path dir;

    private Tokenizer load(GgufWriter w) throws Exception {
        Path p = dir.resolve("v" + System.nanoTime() + ".gguf");
        w.write(p);
        try (GgufModel m = GgufModel.open(p)) {
            return Tokenizer.fromGguf(m);
        }
    }

    /** ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, 259 ▁, 260 a, 261 b, 262 ab, 263 ▁a, 264 ▁ab, 265 <|user|>, 266 c. */
    static GgufWriter spmVocab() {
        List<String> tokens = new ArrayList<>(List.of("<unk>", "<s>", "</s>"));
        List<Integer> types = new ArrayList<>(List.of(2, 3, 3));
        List<Float> scores = new ArrayList<>(List.of(0f, 0f, 0f));
        for (int b = 0; b < 256; b++) {
            tokens.add(String.format("<0x%02X>", b));
            types.add(6);
            scores.add(0f);
        }
        String[] words = {"▁", "a", "b", "ab", "▁a", "▁ab", "<|user|>", "c"};
        float[] sc = {-1f, -2f, -2f, -0.5f, -1.5f, -0.2f, 0f, -3f};
        int[] ty = {1, 1, 1, 1, 1, 1, 4, 1};
        for (int i = 0; i < words.length; i++) {
            tokens.add(words[i]);
            scores.add(sc[i]);
            types.add(ty[i]);
        }
        float[] s = new float[scores.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = scores.get(i);
        }
        return new GgufWriter()
                .putString("tokenizer.ggml.model", "llama")
                .putArray("tokenizer.ggml.tokens", GgufArray.ofStrings(tokens))
                .putArray("tokenizer.ggml.scores", GgufArray.ofFloat32(s))
                .putArray(
                        "tokenizer.ggml.token_type",
                        GgufArray.ofInt32(types.stream().mapToInt(i -> i).toArray()))
                .putUInt32("tokenizer.ggml.bos_token_id", 1)
                .putUInt32("tokenizer.ggml.eos_token_id", 2);
    }

    @Test
    void sentencePieceMergesByScoreWithSpacePrefix() throws Exception {
        Tokenizer t = load(spmVocab());
        assertEquals(Tokenizer.Kind.SENTENCEPIECE, t.kind());
        assertArrayEquals(new int[] {264, 264}, t.encode("ab ab", false, false));
        assertArrayEquals(new int[] {1, 264, 264}, t.encode("ab ab", true, false), "add_bos defaults to true");
        assertArrayEquals(new int[] {259, 198, 172}, t.encode("é", false, false), "byte fallback <0xC3><0xA9>");
        assertArrayEquals(new int[] {}, t.encode("", false, false));
        assertArrayEquals(new int[] {1}, t.encode("", true, false));
        assertEquals("ab ab", t.decode(new int[] {264, 264}));
        assertEquals("é", t.decode(new int[] {259, 198, 172}));
    }

    @Test
    void sentencePieceSpecialTokens() throws Exception {
        Tokenizer t = load(spmVocab());
        // user-defined tokens are always matched; the text after a special token gets a space prefix
        assertArrayEquals(new int[] {263, 265, 259, 261}, t.encode("a<|user|>b", false, false));
        // control tokens only with parseSpecial
        assertArrayEquals(new int[] {1, 1, 263}, t.encode("<s>a", true, true));
        assertArrayEquals(new int[] {1, 259, 63, 118, 65, 260}, t.encode("<s>a", true, false));
        assertEquals("<s> a", t.decode(new int[] {1, 263}, true));
        assertEquals(" a", t.decode(new int[] {1, 263}, false), "a hidden BOS still ends the first-piece rule");
        assertEquals("<|user|>", t.decode(new int[] {265}, false), "user-defined tokens always render");
        assertTrue(t.isEndOfGeneration(2));
        assertFalse(t.isEndOfGeneration(1));
    }

    @Test
    void sentencePieceWithoutSpacePrefix() throws Exception {
        Tokenizer t = load(spmVocab().putBool("tokenizer.ggml.add_space_prefix", false));
        assertArrayEquals(new int[] {262, 264}, t.encode("ab ab", false, false));
        assertEquals("ab ab", t.decode(new int[] {262, 264}));
    }

    /** ids 0..255: the byte-level characters of bytes 0..255; 256 ab, 257 Ġa, 258 Ġab, 259 <|eot|>, 260 <|tool|>, 261 <|endoftext|>. */
    static GgufWriter bpeVocab(String pre, List<String> merges) {
        List<String> tokens = new ArrayList<>();
        List<Integer> types = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            tokens.add(new String(Character.toChars(ByteLevel.codepointOf(b))));
            types.add(1);
        }
        String[] words = {"ab", "Ġa", "Ġab", "<|eot|>", "<|tool|>", "<|endoftext|>"};
        int[] ty = {1, 1, 1, 3, 4, 1};
        for (int i = 0; i < words.length; i++) {
            tokens.add(words[i]);
            types.add(ty[i]);
        }
        return new GgufWriter()
                .putString("tokenizer.ggml.model", "gpt2")
                .putString("tokenizer.ggml.pre", pre)
                .putArray("tokenizer.ggml.tokens", GgufArray.ofStrings(tokens))
                .putArray(
                        "tokenizer.ggml.token_type",
                        GgufArray.ofInt32(types.stream().mapToInt(i -> i).toArray()))
                .putArray("tokenizer.ggml.merges", GgufArray.ofStrings(merges))
                .putUInt32("tokenizer.ggml.bos_token_id", 261)
                .putUInt32("tokenizer.ggml.eos_token_id", 261);
    }

    static final List<String> MERGES = List.of("a b", "Ġ a", "Ġ ab");

    @Test
    void bpeMergesByRank() throws Exception {
        Tokenizer t = load(bpeVocab("gpt-2", MERGES));
        assertEquals(Tokenizer.Kind.BPE, t.kind());
        assertArrayEquals(new int[] {258}, t.encode(" ab", false, false), "a+b (rank 0), then Ġ+ab (rank 2)");
        assertArrayEquals(new int[] {256, 258}, t.encode("ab ab", false, false));
        assertArrayEquals(new int[] {257, 'c'}, t.encode(" ac", false, false));
        assertArrayEquals(new int[] {0xC3, 0xA9}, t.encode("é", false, false), "bytes of é as byte-level chars");
        assertArrayEquals(new int[] {256}, t.encode("ab", true, false), "gpt-2 does not add BOS");
        assertEquals("ab ab", t.decode(new int[] {256, 258}));
        assertEquals("é", t.decode(new int[] {0xC3, 0xA9}));
    }

    @Test
    void bpeSpecialTokensAndEndOfGeneration() throws Exception {
        Tokenizer t = load(bpeVocab("gpt-2", MERGES));
        assertArrayEquals(new int[] {'x', 259, 'y'}, t.encode("x<|eot|>y", false, true));
        int[] asText = t.encode("x<|eot|>y", false, false);
        assertEquals(9, asText.length, "control token text is tokenized as text without parseSpecial");
        assertArrayEquals(new int[] {'x', 260, 'y'}, t.encode("x<|tool|>y", false, false), "user-defined always");
        // <|endoftext|> is typed NORMAL in the file but recognised as end-of-generation, hence control
        assertTrue(t.isControl(261));
        assertTrue(t.isEndOfGeneration(261));
        assertArrayEquals(new int[] {261, 'x'}, t.encode("<|endoftext|>x", false, true));
        assertEquals("x<|eot|>y", t.decode(new int[] {'x', 259, 'y'}, true));
        assertEquals("xy", t.decode(new int[] {'x', 259, 'y'}, false));
        // longest special token wins where they overlap
        assertEquals("<|eot|>", t.tokenText(259));
        assertEquals(259, t.tokenId("<|eot|>").getAsInt());
    }

    @Test
    void bpeDecodeCleansSpacesOnlyWhereLlamaCppDoes() throws Exception {
        Tokenizer gpt2 = load(bpeVocab("gpt-2", MERGES));
        int[] ids = gpt2.encode("a , b 's", false, false);
        assertEquals("a, b's", gpt2.decode(ids));
        Tokenizer qwen2 = load(bpeVocab("qwen2", MERGES));
        assertEquals("a , b 's", qwen2.decode(qwen2.encode("a , b 's", false, false)));
    }

    @Test
    void llama3IgnoresMergesForWholeWordTokens() throws Exception {
        Tokenizer llama3 = load(bpeVocab("llama-bpe", List.of()));
        assertArrayEquals(new int[] {258}, llama3.encode(" ab", false, false));
        assertTrue(llama3.addBos());
        assertArrayEquals(new int[] {261, 258}, llama3.encode(" ab", true, false));
        Tokenizer gpt2 = load(bpeVocab("gpt-2", List.of()));
        assertArrayEquals(new int[] {' ', 'a', 'b'}, gpt2.encode(" ab", false, false), "no merges: the bytes");
    }

    @Test
    void unsupportedOrMalformedVocabulariesFailClearly() throws Exception {
        UnsupportedOperationException pre =
                assertThrows(UnsupportedOperationException.class, () -> load(bpeVocab("no-such-pre", MERGES)));
        assertTrue(pre.getMessage().contains("tokenizer.ggml.pre 'no-such-pre' is not supported"), pre.getMessage());
        assertTrue(pre.getMessage().contains("llama-bpe"), pre.getMessage());
        UnsupportedOperationException model = assertThrows(
                UnsupportedOperationException.class,
                () -> load(new GgufWriter()
                        .putString("tokenizer.ggml.model", "t5")
                        .putArray("tokenizer.ggml.tokens", GgufArray.ofStrings(List.of("a")))));
        assertTrue(model.getMessage().contains("'t5' is not supported"), model.getMessage());
        GgufFormatException dup = assertThrows(
                GgufFormatException.class,
                () -> load(new GgufWriter()
                        .putString("tokenizer.ggml.model", "llama")
                        .putArray(
                                "tokenizer.ggml.tokens",
                                GgufArray.ofStrings(List.of("<unk>", "<s>", "</s>", "a", "a")))));
        assertTrue(dup.getMessage().contains("duplicate token in vocabulary: 'a' has ids 3 and 4"), dup.getMessage());
        GgufFormatException noMerges = assertThrows(
                GgufFormatException.class,
                () -> load(new GgufWriter()
                        .putString("tokenizer.ggml.model", "gpt2")
                        .putString("tokenizer.ggml.pre", "gpt-2")
                        .putArray("tokenizer.ggml.tokens", GgufArray.ofStrings(List.of("a")))));
        assertTrue(
                noMerges.getMessage().contains("missing metadata key 'tokenizer.ggml.merges'"), noMerges.getMessage());
        Tokenizer t = load(spmVocab());
        IllegalArgumentException id = assertThrows(IllegalArgumentException.class, () -> t.tokenText(267));
        assertTrue(id.getMessage().contains("token id 267 out of range [0, 267)"), id.getMessage());
    }
}
