/**
 * Tokenizers built from GGUF metadata exactly as llama.cpp builds them ({@link
 * io.kvcache4j.eval.tokenizer.Tokenizer}: SentencePiece and byte-level BPE with llama.cpp's
 * pre-tokenizers), and llama.cpp's tokenizer test-vector format ({@link
 * io.kvcache4j.eval.tokenizer.VocabTestFile}).
 */
package io.kvcache4j.eval.tokenizer;
