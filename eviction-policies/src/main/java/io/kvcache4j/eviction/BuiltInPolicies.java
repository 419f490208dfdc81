package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.EvictionPolicyProvider;
import java.util.List;

/**
 * Registers this module's policies with {@link io.kvcache4j.api.EvictionPolicies} through {@link
 * java.util.ServiceLoader} ({@code META-INF/services/io.kvcache4j.api.EvictionPolicyProvider}): each
 * is configured from a {@link Budget} by {@link PolicyConfig.Builder#budget} with every other
 * parameter at the paper's default.
 */
public final class BuiltInPolicies {
    /** The names of this module's policies, in the order they are listed. */
    static final List<String> NAMES =
            List.of("full", "streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer");

    private BuiltInPolicies() {}

    /** A provider of one built-in policy. */
    abstract static class Base implements EvictionPolicyProvider {
        private final String name;
        private final String description;

        Base(String name, String description) {
            this.name = name;
            this.description = description;
        }

        @Override
        public final String name() {
            return name;
        }

        @Override
        public final String description() {
            return description;
        }

        @Override
        public final EvictionPolicy create(Budget budget) {
            return PolicyConfig.builder().budget(budget).build().policy(name);
        }
    }

    /** {@link StreamingLlmPolicy}. */
    public static final class Streaming extends Base {
        public Streaming() {
            super("streaming", "StreamingLLM: attention sinks plus a sliding window of recent tokens");
        }
    }

    /** {@link H2OPolicy}. */
    public static final class H2O extends Base {
        public H2O() {
            super("h2o", "H2O: heavy hitters by accumulated attention, every decode step");
        }
    }

    /** {@link H2OPrefillPolicy}. */
    public static final class H2OPrefill extends Base {
        public H2OPrefill() {
            super("h2o-prefill", "H2O scored on the prompt only, compressed once after prefill");
        }
    }

    /** {@link SnapKvPolicy}. */
    public static final class SnapKv extends Base {
        public SnapKv() {
            super("snapkv", "SnapKV: prompt tokens voted by the last prompt queries, pooled, once after prefill");
        }
    }

    /** {@link HashEvictPolicy}. */
    public static final class HashEvict extends Base {
        public HashEvict() {
            super("hashevict", "HashEvict: SimHash distance to the current query, before attention");
        }
    }

    /** {@link LazyEvictionPolicy}. */
    public static final class Lazy extends Base {
        public Lazy() {
            super("lazy", "LazyEviction: lagged, recurrence-aware eviction every W steps");
        }
    }

    /** {@link PyramidInferPolicy}. */
    public static final class PyramidInfer extends Base {
        public PyramidInfer() {
            super("pyramidinfer", "PyramidInfer: layer-wise decreasing budgets scored by recent queries");
        }
    }
}
