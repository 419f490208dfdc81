/**
 * Tiered KV storage and hybrid attention over it, all on the CPU (a device backend may implement the
 * fast tier with the same contracts).
 *
 * <ul>
 *   <li><b>Tiers.</b> {@link io.kvcache4j.hybrid.Tier}: {@link io.kvcache4j.hybrid.FastTier} (a bounded
 *       region standing for device memory) and {@link io.kvcache4j.hybrid.SlowTier} (off-heap host
 *       memory); {@link io.kvcache4j.hybrid.TransferEngine} copies between them asynchronously into a
 *       fixed number of staging buffers, each copy a {@link io.kvcache4j.hybrid.Transfer} with explicit
 *       completion.
 *   <li><b>HeadInfer</b> (arXiv 2502.12574): {@link io.kvcache4j.hybrid.HeadInferFactory}, whole heads
 *       per tier, offloaded heads staged per layer with the next layer prefetched; bit-identical to the
 *       exact f16 cache. Registered as {@code headinfer}.
 *   <li><b>RetrievalAttention</b> (arXiv 2409.10516): {@link io.kvcache4j.hybrid.SplitFactory#retrieval},
 *       sinks and recent window exact in the fast tier, top-k of the slow tier by a {@link
 *       io.kvcache4j.hybrid.TokenSelector} ({@link io.kvcache4j.hybrid.FlatSelector}: exact scan; an ANN
 *       index plugs in here), merged by log-sum-exp. Registered as {@code retrieval}.
 *   <li><b>HGCA</b> (hybrid GPU–CPU attention with per-head sparsification): {@link
 *       io.kvcache4j.hybrid.SplitFactory#hgca}, recent window dense, per-query-head salient slow-tier
 *       keys sparse, heads in parallel on the cache's attention pool, merged by log-sum-exp. Registered
 *       as {@code hgca}.
 * </ul>
 *
 * <p><b>Budgets.</b> A {@link io.kvcache4j.api.Budget} sizes the fast tier: for retrieval and HGCA its
 * tokens per (layer, KV head) are the sinks plus the recent window ({@link
 * io.kvcache4j.hybrid.RetrievalConfig#forBudget}, {@link io.kvcache4j.hybrid.HgcaConfig#forBudget}); for
 * HeadInfer its share of the prompt becomes the share of resident heads ({@link
 * io.kvcache4j.hybrid.HeadInferConfig#forBudget}).
 */
package io.kvcache4j.hybrid;
