package io.kvcache4j.eval.gguf;

/**
 * A GGUF file, or a value read from one, is not what it must be: truncated or corrupt bytes, an
 * unknown type id, inconsistent tensor shapes or offsets, or a metadata key that is missing or has
 * another type than the caller asked for. The message names the file, the key or tensor, and the
 * offending value.
 */
public class GgufFormatException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public GgufFormatException(String message) {
        super(message);
    }

    public GgufFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
