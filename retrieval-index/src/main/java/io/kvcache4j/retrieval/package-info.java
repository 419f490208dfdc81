/**
 * Top-k inner-product indexes over the keys of one (layer, KV head), for retrieval-based decode
 * attention: a search returns the slots whose keys have the largest {@code q·k}, for a store to read
 * exactly through {@link io.kvcache4j.store.SlotSelection#list}.
 *
 * <p>{@link io.kvcache4j.retrieval.KeyIndex} is the SPI; {@link io.kvcache4j.retrieval.KeyIndexes}
 * finds the installed kinds by name ({@code flat}, {@code hnsw}, {@code roar}) through {@link
 * io.kvcache4j.retrieval.KeyIndexProvider} and {@link java.util.ServiceLoader}.
 */
package io.kvcache4j.retrieval;
