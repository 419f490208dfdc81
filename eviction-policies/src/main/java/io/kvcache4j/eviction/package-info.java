/**
 * Token eviction policies for the kv-api eviction SPI: StreamingLLM, H2O (decode-time and the
 * prefill-only variant), SnapKV, HashEvict, LazyEviction and PyramidInfer. Registered by name with
 * {@link io.kvcache4j.api.EvictionPolicies} ({@link io.kvcache4j.eviction.BuiltInPolicies}), built
 * from a {@link io.kvcache4j.api.Budget}; {@link io.kvcache4j.eviction.PolicyConfig#policy} builds one
 * with every parameter set by hand.
 *
 * <p>Every policy keeps its per-token metadata in slot columns of {@link io.kvcache4j.api.HeadSlots}
 * (they move with the slots), evicts through the store so that pages are freed at once, and
 * allocates nothing per decode step once its scratch has reached the held token count. Score-based
 * policies take their scores from the cache's attention pass; HashEvict decides before attention
 * from its own signatures.
 */
package io.kvcache4j.eviction;
