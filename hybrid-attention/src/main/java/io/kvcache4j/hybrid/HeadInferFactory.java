package io.kvcache4j.hybrid;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.LayerAttention;
import io.kvcache4j.attention.LayerContext;
import io.kvcache4j.store.HeadStore;
import io.kvcache4j.store.HeadStoreFactory;
import java.util.Objects;

/**
 * HeadInfer (Luo et al., "HeadInfer: Memory-Efficient LLM Inference by Head-wise Offloading", arXiv
 * 2502.12574): every (layer, KV head) is placed whole in one tier. Heads {@code 0 ..
 * residentHeads-1} of every layer keep their exact f16 pages in the {@link FastTier}; the others
 * live in the {@link SlowTier} and, around each layer's attention, are staged into fast-tier buffers
 * by a {@link TransferEngine}, the next layer's while the current one computes (HeadInfer's
 * ping-pong, at layer granularity because a layer's heads run in parallel).
 *
 * <p><b>Exactness.</b> Pages have {@link io.kvcache4j.store.PagedHeadStore}'s layout and attention
 * is kv-api's CPU source with the same kernel, so a cache with this storage gives outputs bit-identical
 * to the exact f16 cache of the same page size, under every eviction policy.
 *
 * <p><b>Memory.</b> The fast tier holds the resident heads' pages and the staging buffers (at most
 * two layers of offloaded heads); the slow tier the offloaded heads' pages. A cache's {@link
 * io.kvcache4j.api.KvCache#bytesHeld()} counts the pages of both tiers (exact, as for the exact
 * store); the staging buffers are the transfer engine's and show in {@link FastTier#bytesHeld()}.
 * All of it returns to the tiers when the cache closes. The tiers belong to the factory and are shared
 * by the caches it builds (their budgets bound all of them together).
 *
 * <p>Each cache gets its own schedule: the factory links the layer sources it creates on one thread,
 * from layer 0 to the last, as {@link io.kvcache4j.api.KvCache} construction does. Immutable
 * configuration; thread-safe for caches built on different threads.
 */
public final class HeadInferFactory implements HeadStoreFactory {
    private final HeadInferConfig config;
    private final Tier fast;
    private final Tier slow;
    private final AttentionKernel kernel;
    private final ThreadLocal<HeadInferSchedule> building = new ThreadLocal<>();

    /** A factory with its own unbounded fast tier and slow tier, and the process's kernel. */
    public HeadInferFactory(HeadInferConfig config) {
        this(config, FastTier.unbounded(), new SlowTier(), AttentionKernels.get());
    }

    /** A factory placing pages in the given tiers, attending with {@code kernel}. */
    public HeadInferFactory(HeadInferConfig config, Tier fast, Tier slow, AttentionKernel kernel) {
        this.config = Objects.requireNonNull(config, "config");
        this.fast = Objects.requireNonNull(fast, "fast");
        this.slow = Objects.requireNonNull(slow, "slow");
        this.kernel = Objects.requireNonNull(kernel, "kernel");
    }

    public HeadInferConfig config() {
        return config;
    }

    /** The fast tier (resident pages and staging buffers). */
    public Tier fastTier() {
        return fast;
    }

    /** The slow tier (offloaded pages). */
    public Tier slowTier() {
        return slow;
    }

    @Override
    public HeadStore create(Spec spec) {
        int kvHeads = spec.shape().kvHeads();
        config.stagingBuffers(kvHeads); // checks the configuration against the model
        boolean resident = spec.kvHead() < config.residentHeads();
        TierPages pages =
                new TierPages(resident ? fast : slow, KvDType.F16, spec.headDim(), config.pageTokens(), kernel);
        return new HeadInferStore(pages, resident);
    }

    @Override
    public LayerAttention layerAttention(LayerContext context) {
        HeadInferSchedule schedule = building.get();
        if (context.layer() == 0
                || schedule == null
                || !schedule.shape().equals(context.shape())
                || !schedule.attachedThrough(context.layer() - 1)) {
            schedule = new HeadInferSchedule(
                    context.shape(), fast, config.stagingBuffers(context.shape().kvHeads()));
            building.set(schedule);
        }
        schedule.attach(context.layer(), context.stores());
        if (context.layer() == context.shape().layers() - 1) {
            building.remove();
        }
        return new HeadInferLayerAttention(schedule, context.layer(), LayerAttention.cpu(context, kernel));
    }

    @Override
    public String name() {
        return "headinfer";
    }
}
