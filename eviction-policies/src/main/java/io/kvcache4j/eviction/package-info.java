/**
 * Token eviction policies for the kv-api eviction SPI: StreamingLLM, H2O (decode-time and the
 * prefill-only variant), SnapKV, HashEvict, LazyEviction and PyramidInfer.
 *
 * <p>Each policy is built from its own configuration record holding the shared {@link
 * io.kvcache4j.api.Budget} and the policy's own parameters at the papers' defaults, e.g. {@code new
 * SnapKvPolicy(SnapKvPolicy.Config.defaults(budget).withWindow(64))}; by name, every policy is
 * installed in {@link io.kvcache4j.api.EvictionPolicies} through {@code
 * META-INF/services/io.kvcache4j.api.EvictionPolicyProvider} (each policy's nested {@code Provider}):
 * {@code EvictionPolicies.create("h2o", Budget.tokens(2048))}.
 *
 * <table>
 *   <caption>Policies and their cadence</caption>
 *   <tr><th>name</th><th>class</th><th>cadence</th></tr>
 *   <tr><td>{@code streaming}</td><td>{@link io.kvcache4j.eviction.StreamingLlmPolicy}</td><td>every step</td></tr>
 *   <tr><td>{@code h2o}</td><td>{@link io.kvcache4j.eviction.H2OPolicy}</td><td>every step, after attention</td></tr>
 *   <tr><td>{@code h2o-prefill}</td><td>{@link io.kvcache4j.eviction.H2OPrefillPolicy}</td><td>once, after prefill</td></tr>
 *   <tr><td>{@code snapkv}</td><td>{@link io.kvcache4j.eviction.SnapKvPolicy}</td><td>once, after prefill</td></tr>
 *   <tr><td>{@code hashevict}</td><td>{@link io.kvcache4j.eviction.HashEvictPolicy}</td><td>every step, before attention</td></tr>
 *   <tr><td>{@code lazy}</td><td>{@link io.kvcache4j.eviction.LazyEvictionPolicy}</td><td>lagged: once per W steps</td></tr>
 *   <tr><td>{@code pyramidinfer}</td><td>{@link io.kvcache4j.eviction.PyramidInferPolicy}</td><td>after prefill, then every
 *       16 generated tokens</td></tr>
 * </table>
 *
 * <p>Every policy keeps its per-token metadata in slot columns of {@link io.kvcache4j.api.HeadSlots}
 * (they move with the slots), evicts through the store so that pages are freed at once, and
 * allocates nothing per decode step once its scratch has reached the held token count. Score-based
 * policies take their scores from the cache's attention pass; HashEvict decides before attention
 * from its own signatures.
 */
package io.kvcache4j.eviction;
