package io.kvcache4j.api;

import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.cache.DefaultKvCache;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.PagedHeadStore;
import java.util.Objects;

/**
 * Composes a {@link KvCache}: storage (exact rows in a {@link KvDType}, or a codec's or a tier's
 * {@link HeadStoreFactory}), eviction policy, page size, hard capacity and kernel. Builders are not
 * thread-safe; the caches they build are independent of each other.
 */
public final class KvCacheBuilder {
    /**
     * Default tokens per off-heap page of a cache that evicts, and of codec and tier storages: small
     * enough that per-head budgets free real memory.
     */
    public static final int DEFAULT_PAGE_TOKENS = 16;

    /**
     * Default tokens per page of the exact storage of a cache that keeps every token ({@link
     * FullPolicy}): a 32-token page holds two 16-key blocks in the same cache lines, which the
     * attention kernel scores in one pass, and a page more or less per head is nothing beside a full
     * cache. Attention over it is 1.1–1.5× faster at groups of 1, 2 and 4 than over 16-token pages,
     * with the same bits.
     */
    public static final int FULL_CACHE_PAGE_TOKENS = 32;

    private final ModelShape shape;
    private KvDType dtype = KvDType.F16;
    private EvictionPolicy policy = FullPolicy.INSTANCE;
    /** Set by {@link #pageTokens}; 0 until then (the default depends on the policy). */
    private int pageTokens;

    private int capacityTokens = Integer.MAX_VALUE;
    private AttentionKernel kernel = AttentionKernels.get();
    private HeadStoreFactory storeFactory;
    private AttentionPool pool;

    KvCacheBuilder(ModelShape shape) {
        this.shape = Objects.requireNonNull(shape, "shape");
    }

    /** Type of the exact storage (default f16); ignored when {@link #store} is set. */
    public KvCacheBuilder dtype(KvDType dtype) {
        this.dtype = Objects.requireNonNull(dtype, "dtype");
        return this;
    }

    /** Eviction policy (default {@link FullPolicy}). */
    public KvCacheBuilder policy(EvictionPolicy policy) {
        this.policy = Objects.requireNonNull(policy, "policy");
        return this;
    }

    /**
     * Tokens per off-heap page of the exact storage: a multiple of 16 in [16, 65536] (default {@link
     * #FULL_CACHE_PAGE_TOKENS} with {@link FullPolicy}, {@link #DEFAULT_PAGE_TOKENS} with any other
     * policy). Attention gives the same bits for every page size.
     */
    public KvCacheBuilder pageTokens(int pageTokens) {
        PagedHeadStore.checkPageTokens(pageTokens);
        this.pageTokens = pageTokens;
        return this;
    }

    /**
     * Hard limit on the tokens one (layer, KV head) may hold at once; appending past it throws
     * (default: unlimited).
     */
    public KvCacheBuilder capacityTokens(int capacityTokens) {
        if (capacityTokens < 1) {
            throw new IllegalArgumentException("capacityTokens must be >= 1, was " + capacityTokens);
        }
        this.capacityTokens = capacityTokens;
        return this;
    }

    /** Kernel of the exact storage and of score computation (default {@link AttentionKernels#get()}); tests pin one. */
    public KvCacheBuilder kernel(AttentionKernel kernel) {
        this.kernel = Objects.requireNonNull(kernel, "kernel");
        return this;
    }

    /**
     * How each (layer, KV head) stores its tokens and how a layer's attention runs over them (default:
     * {@link HeadStoreFactory#exact} in {@link #dtype}). Quantizing codecs and device/host tiers plug in
     * here.
     */
    public KvCacheBuilder store(HeadStoreFactory storeFactory) {
        this.storeFactory = Objects.requireNonNull(storeFactory, "storeFactory");
        return this;
    }

    /**
     * Threads for attention: a layer's heads, and chunks of long heads, run on {@code pool} (default:
     * the calling thread only). Outputs are bit-identical whatever the pool's size. The pool stays the
     * caller's: closing the cache does not close it, and one pool may serve many caches.
     */
    public KvCacheBuilder attentionPool(AttentionPool pool) {
        this.pool = Objects.requireNonNull(pool, "pool");
        return this;
    }

    /**
     * Tokens per page the exact storage gets: the value set, or the default for the policy ({@link
     * #FULL_CACHE_PAGE_TOKENS} for {@link FullPolicy}, {@link #DEFAULT_PAGE_TOKENS} otherwise).
     */
    public int pageTokens() {
        if (pageTokens != 0) {
            return pageTokens;
        }
        return policy instanceof FullPolicy ? FULL_CACHE_PAGE_TOKENS : DEFAULT_PAGE_TOKENS;
    }

    /** Builds an empty cache. */
    public KvCache build() {
        HeadStoreFactory factory =
                storeFactory != null ? storeFactory : HeadStoreFactory.exact(dtype, pageTokens(), kernel);
        return new DefaultKvCache(shape, policy, capacityTokens, kernel, factory, pool);
    }
}
