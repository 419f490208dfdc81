package io.kvcache4j.eval.niah;

/** The tokenizer operations the harness needs. */
public interface TextCodec {
    /** Token ids of {@code text}, without BOS. */
    int[] encode(String text);

    /** Text of {@code ids[from..to)}. */
    String decode(int[] ids, int from, int to);

    int bosId();

    /** End-of-sequence id, or -1 if the vocabulary has none. */
    int eosId();
}
