/**
 * Quantizing KV stores on kv-api's storage seam ({@link io.kvcache4j.store.HeadStore}): each codec
 * is a store registered by name through {@link io.kvcache4j.store.HeadStoreProvider}, computes
 * attention scores and weighted sums on its packed codes (scales and zero points folded into the
 * query and the probabilities), declares its eviction granularity and reports its bytes exactly.
 */
package io.kvcache4j.quantization;
