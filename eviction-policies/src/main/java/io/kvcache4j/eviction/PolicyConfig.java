package io.kvcache4j.eviction;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.FullPolicy;
import java.util.Locale;

/**
 * Configuration shared by every eviction policy: the token budget, the attention sinks and the
 * recent window, plus per-policy knobs whose defaults are the papers' values. Immutable and
 * thread-safe; build one with {@link #builder()}.
 *
 * <p><b>Units.</b> All budgets count tokens held by one (layer, KV head) store, sinks and recent
 * window included. {@link #budgetTokens()} is per layer and per KV head; policies whose budget
 * depends on the layer (PyramidInfer) treat it as the mean over layers.
 *
 * <p><b>Validation.</b> {@link Builder#build()} rejects impossible values with an {@link
 * IllegalArgumentException} that names the value and the allowed range: budgets below 1, a budget
 * smaller than {@code sinkTokens + recentTokens}, NaN or out-of-range fractions and ratios. Policies
 * check their own extra constraints (e.g. SnapKV's observation window) when constructed.
 */
public final class PolicyConfig {

    /** How SnapKV smooths window scores along the key axis. */
    public enum Pooling {
        /** Average over the kernel (zero padding counted, like {@code avg_pool1d}). */
        AVG,
        /** Maximum over the kernel. */
        MAX
    }

    /** How HashEvict turns Hamming distances into a token's eviction score. */
    public enum HashScoring {
        /**
         * The attention-loss counter: Hamming distances to every query that has seen the token,
         * summed. Older tokens have met more queries, so this also ages tokens out.
         */
        ACCUMULATED,
        /** The same sum divided by the queries that have seen the token: age-neutral. */
        MEAN,
        /** The current query's Hamming distance only. */
        LAST
    }

    /** Default attention sinks: the first 4 tokens (StreamingLLM's {@code start_size}). */
    public static final int DEFAULT_SINK_TOKENS = 4;
    /** Default recent window: 32 tokens (SnapKV's observation window in its published configs). */
    public static final int DEFAULT_RECENT_TOKENS = 32;

    private final int budgetTokens;
    private final int sinkTokens;
    private final int recentTokens;
    private final int snapKvWindow;
    private final int snapKvKernel;
    private final Pooling snapKvPooling;
    private final int hashBits;
    private final long hashSeed;
    private final HashScoring hashScoring;
    private final int lazyWindow;
    private final double lazyImportance;
    private final double pyramidPrefillDecay;
    private final double pyramidGenDecay;
    private final double pyramidGenCompressRatio;
    private final double pyramidDistanceWeight;
    private final int pyramidCompressEvery;

    private PolicyConfig(Builder b) {
        this.budgetTokens = b.budgetTokens;
        this.sinkTokens = b.sinkTokens;
        this.recentTokens = b.recentTokens;
        this.snapKvWindow = b.snapKvWindow;
        this.snapKvKernel = b.snapKvKernel;
        this.snapKvPooling = b.snapKvPooling;
        this.hashBits = b.hashBits;
        this.hashSeed = b.hashSeed;
        this.hashScoring = b.hashScoring;
        this.lazyWindow = b.lazyWindow;
        this.lazyImportance = b.lazyImportance;
        this.pyramidPrefillDecay = b.pyramidPrefillDecay;
        this.pyramidGenDecay = b.pyramidGenDecay;
        this.pyramidGenCompressRatio = b.pyramidGenCompressRatio;
        this.pyramidDistanceWeight = b.pyramidDistanceWeight;
        this.pyramidCompressEvery = b.pyramidCompressEvery;
    }

    /**
     * The built-in policy called {@code name} (case-insensitive; {@code full} ignores the
     * configuration), configured by this configuration. Policies from other jars are created by name
     * through {@link io.kvcache4j.api.EvictionPolicies}.
     *
     * @throws IllegalArgumentException for a name that is not built in, or a configuration the policy
     *     cannot honour
     */
    public EvictionPolicy policy(String name) {
        return switch (name.trim().toLowerCase(Locale.ROOT)) {
            case "full" -> FullPolicy.INSTANCE;
            case "streaming" -> new StreamingLlmPolicy(this);
            case "h2o" -> new H2OPolicy(this);
            case "h2o-prefill" -> new H2OPrefillPolicy(this);
            case "snapkv" -> new SnapKvPolicy(this);
            case "hashevict" -> new HashEvictPolicy(this);
            case "lazy" -> new LazyEvictionPolicy(this);
            case "pyramidinfer" -> new PyramidInferPolicy(this);
            default ->
                throw new IllegalArgumentException("unknown built-in eviction policy '" + name + "'; built in: "
                        + String.join(", ", BuiltInPolicies.NAMES));
        };
    }

    /** A builder with every default set and no budget (the budget must be given). */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder holding this configuration's values. */
    public Builder toBuilder() {
        return new Builder(this);
    }

    /** Tokens one (layer, KV head) may hold, sinks and recent window included; >= 1. */
    public int budgetTokens() {
        return budgetTokens;
    }

    /** Leading tokens (positions {@code 0 .. sinkTokens-1}) that are never evicted (default 4). */
    public int sinkTokens() {
        return sinkTokens;
    }

    /** Newest tokens that are never evicted (default 32). */
    public int recentTokens() {
        return recentTokens;
    }

    /** SnapKV: observation window, the last prompt queries that vote (default 32). */
    public int snapKvWindow() {
        return snapKvWindow;
    }

    /** SnapKV: pooling kernel along the key axis, odd (default 7). */
    public int snapKvKernel() {
        return snapKvKernel;
    }

    /** SnapKV: pooling kind (default {@link Pooling#MAX}). */
    public Pooling snapKvPooling() {
        return snapKvPooling;
    }

    /** HashEvict: SimHash signature bits per token per KV head, in [1, 64] (default 32). */
    public int hashBits() {
        return hashBits;
    }

    /** HashEvict: seed of the Gaussian projections (one per layer and KV head). */
    public long hashSeed() {
        return hashSeed;
    }

    /** HashEvict: how Hamming distances become a token's score (default {@link HashScoring#ACCUMULATED}). */
    public HashScoring hashScoring() {
        return hashScoring;
    }

    /** LazyEviction: observation window W, the steps between batch evictions (default 32). */
    public int lazyWindow() {
        return lazyWindow;
    }

    /**
     * LazyEviction: a token is important at a step when its softmax mass is at least this multiple of
     * the uniform mass {@code 1/visibleTokens} (default 1.0).
     */
    public double lazyImportance() {
        return lazyImportance;
    }

    /** PyramidInfer: prefill decay ratio ρ of the cosine schedule, in (0, 1] (default 0.9). */
    public double pyramidPrefillDecay() {
        return pyramidPrefillDecay;
    }

    /** PyramidInfer: generation decay ratio of the cosine schedule, in (0, 1] (default 0.1). */
    public double pyramidGenDecay() {
        return pyramidGenDecay;
    }

    /** PyramidInfer: generation compress ratio, in (0, 1] (default 0.9). */
    public double pyramidGenCompressRatio() {
        return pyramidGenCompressRatio;
    }

    /** PyramidInfer: weight of the newest observer query, linear from 1.0 (default 1.2). */
    public double pyramidDistanceWeight() {
        return pyramidDistanceWeight;
    }

    /** PyramidInfer: generated tokens per compression block (default 16). */
    public int pyramidCompressEvery() {
        return pyramidCompressEvery;
    }

    @Override
    public String toString() {
        return "PolicyConfig[budgetTokens=" + budgetTokens + ", sinkTokens=" + sinkTokens + ", recentTokens="
                + recentTokens + ", snapKvWindow=" + snapKvWindow + ", snapKvKernel=" + snapKvKernel
                + ", snapKvPooling=" + snapKvPooling + ", hashBits=" + hashBits + ", hashSeed=" + hashSeed
                + ", hashScoring=" + hashScoring + ", lazyWindow=" + lazyWindow + ", lazyImportance="
                + lazyImportance + ", pyramidPrefillDecay=" + pyramidPrefillDecay + ", pyramidGenDecay="
                + pyramidGenDecay + ", pyramidGenCompressRatio=" + pyramidGenCompressRatio
                + ", pyramidDistanceWeight=" + pyramidDistanceWeight + ", pyramidCompressEvery="
                + pyramidCompressEvery + "]";
    }

    /** Mutable builder; not thread-safe. Setters check their own range at once. */
    public static final class Builder {
        private int budgetTokens;
        private int sinkTokens = DEFAULT_SINK_TOKENS;
        private int recentTokens = DEFAULT_RECENT_TOKENS;
        private int snapKvWindow = 32;
        private int snapKvKernel = 7;
        private Pooling snapKvPooling = Pooling.MAX;
        private int hashBits = 32;
        private long hashSeed = 0x243F6A8885A308D3L;
        private HashScoring hashScoring = HashScoring.ACCUMULATED;
        private int lazyWindow = 32;
        private double lazyImportance = 1.0;
        private double pyramidPrefillDecay = 0.9;
        private double pyramidGenDecay = 0.1;
        private double pyramidGenCompressRatio = 0.9;
        private double pyramidDistanceWeight = 1.2;
        private int pyramidCompressEvery = 16;

        private Builder() {}

        private Builder(PolicyConfig c) {
            budgetTokens = c.budgetTokens;
            sinkTokens = c.sinkTokens;
            recentTokens = c.recentTokens;
            snapKvWindow = c.snapKvWindow;
            snapKvKernel = c.snapKvKernel;
            snapKvPooling = c.snapKvPooling;
            hashBits = c.hashBits;
            hashSeed = c.hashSeed;
            hashScoring = c.hashScoring;
            lazyWindow = c.lazyWindow;
            lazyImportance = c.lazyImportance;
            pyramidPrefillDecay = c.pyramidPrefillDecay;
            pyramidGenDecay = c.pyramidGenDecay;
            pyramidGenCompressRatio = c.pyramidGenCompressRatio;
            pyramidDistanceWeight = c.pyramidDistanceWeight;
            pyramidCompressEvery = c.pyramidCompressEvery;
        }

        /** Tokens per (layer, KV head), >= 1. */
        public Builder budgetTokens(int budgetTokens) {
            if (budgetTokens < 1) {
                throw new IllegalArgumentException(
                        "budgetTokens must be in [1, " + Integer.MAX_VALUE + "], was " + budgetTokens);
            }
            this.budgetTokens = budgetTokens;
            return this;
        }

        /**
         * Budget, sinks and recent window from a {@link Budget} resolved to tokens; SnapKV's observation
         * window is the recent window (the last prompt queries vote, the same tokens stay).
         *
         * @throws IllegalArgumentException if the budget is still a fraction of the prompt
         */
        public Builder budget(Budget budget) {
            if (budget.isFraction()) {
                throw new IllegalArgumentException("budget " + budget
                        + " is a fraction of the prompt; resolve it against the prompt length first");
            }
            return budgetTokens(budget.tokens())
                    .sinkTokens(budget.sinkTokens())
                    .recentTokens(budget.recentTokens())
                    .snapKvWindow(budget.recentTokens());
        }

        /** Attention sinks, >= 0 (default 4). */
        public Builder sinkTokens(int sinkTokens) {
            this.sinkTokens = atLeast("sinkTokens", sinkTokens, 0);
            return this;
        }

        /** Recent window, >= 0 (default 32). */
        public Builder recentTokens(int recentTokens) {
            this.recentTokens = atLeast("recentTokens", recentTokens, 0);
            return this;
        }

        /** SnapKV observation window, >= 1 (default 32). */
        public Builder snapKvWindow(int window) {
            this.snapKvWindow = atLeast("snapKvWindow", window, 1);
            return this;
        }

        /** SnapKV pooling kernel, odd and >= 1 (default 7). */
        public Builder snapKvKernel(int kernel) {
            if (kernel < 1 || kernel % 2 == 0) {
                throw new IllegalArgumentException("snapKvKernel must be odd and in [1, 2147483647], was " + kernel);
            }
            this.snapKvKernel = kernel;
            return this;
        }

        /** SnapKV pooling kind (default MAX). */
        public Builder snapKvPooling(Pooling pooling) {
            this.snapKvPooling = java.util.Objects.requireNonNull(pooling, "snapKvPooling");
            return this;
        }

        /** HashEvict signature bits, in [1, 64] (default 32). */
        public Builder hashBits(int bits) {
            if (bits < 1 || bits > 64) {
                throw new IllegalArgumentException("hashBits must be in [1, 64], was " + bits);
            }
            this.hashBits = bits;
            return this;
        }

        /** HashEvict projection seed. */
        public Builder hashSeed(long seed) {
            this.hashSeed = seed;
            return this;
        }

        /** HashEvict scoring (default ACCUMULATED). */
        public Builder hashScoring(HashScoring scoring) {
            this.hashScoring = java.util.Objects.requireNonNull(scoring, "hashScoring");
            return this;
        }

        /** LazyEviction observation window W, >= 1 (default 32). */
        public Builder lazyWindow(int window) {
            this.lazyWindow = atLeast("lazyWindow", window, 1);
            return this;
        }

        /** LazyEviction importance threshold as a multiple of uniform mass, finite and > 0 (default 1). */
        public Builder lazyImportance(double multiple) {
            if (!(multiple > 0 && multiple < Double.POSITIVE_INFINITY)) {
                throw new IllegalArgumentException("lazyImportance must be in (0, Infinity), was " + multiple);
            }
            this.lazyImportance = multiple;
            return this;
        }

        /** PyramidInfer prefill decay ratio, in (0, 1] (default 0.9). */
        public Builder pyramidPrefillDecay(double ratio) {
            this.pyramidPrefillDecay = ratio("pyramidPrefillDecay", ratio);
            return this;
        }

        /** PyramidInfer generation decay ratio, in (0, 1] (default 0.1). */
        public Builder pyramidGenDecay(double ratio) {
            this.pyramidGenDecay = ratio("pyramidGenDecay", ratio);
            return this;
        }

        /** PyramidInfer generation compress ratio, in (0, 1] (default 0.9). */
        public Builder pyramidGenCompressRatio(double ratio) {
            this.pyramidGenCompressRatio = ratio("pyramidGenCompressRatio", ratio);
            return this;
        }

        /** PyramidInfer distance weight of the newest observer, in [1, 1000] (default 1.2). */
        public Builder pyramidDistanceWeight(double weight) {
            if (!(weight >= 1 && weight <= 1000)) {
                throw new IllegalArgumentException("pyramidDistanceWeight must be in [1, 1000], was " + weight);
            }
            this.pyramidDistanceWeight = weight;
            return this;
        }

        /** PyramidInfer generation block, >= 1 token (default 16). */
        public Builder pyramidCompressEvery(int tokens) {
            this.pyramidCompressEvery = atLeast("pyramidCompressEvery", tokens, 1);
            return this;
        }

        /**
         * Builds the configuration.
         *
         * @throws IllegalArgumentException if no budget was set or the budget cannot hold the sinks and
         *     the recent window
         */
        public PolicyConfig build() {
            if (budgetTokens < 1) {
                throw new IllegalArgumentException("budgetTokens must be in [1, " + Integer.MAX_VALUE + "], was "
                        + budgetTokens + " (set budgetTokens or budget)");
            }
            long fixed = (long) sinkTokens + recentTokens;
            if (budgetTokens < fixed) {
                throw new IllegalArgumentException("budgetTokens " + budgetTokens + " must be in [" + fixed + ", "
                        + Integer.MAX_VALUE + "]: it has to hold sinkTokens " + sinkTokens + " + recentTokens "
                        + recentTokens);
            }
            return new PolicyConfig(this);
        }

        private static int atLeast(String name, int value, int min) {
            if (value < min) {
                throw new IllegalArgumentException(
                        name + " must be in [" + min + ", " + Integer.MAX_VALUE + "], was " + value);
            }
            return value;
        }

        private static double ratio(String name, double value) {
            if (!(value > 0 && value <= 1)) {
                throw new IllegalArgumentException(name + " must be in (0, 1], was " + value);
            }
            return value;
        }
    }
}
