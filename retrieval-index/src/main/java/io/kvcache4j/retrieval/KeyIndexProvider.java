package io.kvcache4j.retrieval;

import java.util.Set;

/**
 * A named kind of key index that can be installed by putting a jar on the class path, listed in
 * {@code META-INF/services/io.kvcache4j.retrieval.KeyIndexProvider}. {@link KeyIndexes} finds them
 * with {@link java.util.ServiceLoader}.
 */
public interface KeyIndexProvider {

    /** The name used on the command line and in reports, lower case, e.g. {@code hnsw}. */
    String name();

    /** One line on what the index does, e.g. {@code exact top-k by a vectorized scan}. */
    String description();

    /** The option names {@link #create} understands; others are rejected. */
    Set<String> options();

    /**
     * A new, empty index over keys of {@code dimension} components.
     *
     * @throws IllegalArgumentException if {@code dimension} is outside {@code [1, 65536]}, an option
     *     is unknown or out of its range
     */
    KeyIndex create(int dimension, KeyIndexOptions options);
}
