package io.kvcache4j.hybrid;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.KvCacheBuilder;
import io.kvcache4j.store.HeadStoreFactory;
import io.kvcache4j.store.HeadStoreProvider;
import io.kvcache4j.store.HeadStores;

/**
 * The storage kinds of this module, registered by name in {@code
 * META-INF/services/io.kvcache4j.store.HeadStoreProvider}. Each factory gets its own unbounded fast
 * tier and slow tier; for a bounded fast tier build the factory directly.
 */
public final class Providers {
    private Providers() {}

    /**
     * {@code headinfer}: every head offloaded to the slow tier, staged per layer ({@link
     * HeadInferFactory}); {@code headinfer:resident=N} keeps heads {@code 0 .. N-1} of every layer in
     * the fast tier.
     */
    public static final class HeadInfer implements HeadStoreProvider {
        private final String name;
        private final int residentHeads;

        /** The provider instance {@link java.util.ServiceLoader} creates: every head offloaded. */
        public HeadInfer() {
            this("headinfer", 0);
        }

        private HeadInfer(String name, int residentHeads) {
            this.name = name;
            this.residentHeads = residentHeads;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public String description() {
            return "exact binary16 rows, heads offloaded to host memory and staged per layer (HeadInfer)"
                    + residentNote(residentHeads);
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            return new HeadInferFactory(new HeadInferConfig(residentHeads, 0, pageTokens));
        }

        @Override
        public HeadStoreProvider withOptions(String name, java.util.Map<String, String> options) {
            return new HeadInfer(name, residentOption(name, options, "resident"));
        }
    }

    /**
     * {@code headinfer-cuda}: HeadInfer with the GPU found by {@link
     * io.kvcache4j.cuda.CudaBackends#available()} as the fast tier and pinned host memory as the slow
     * tier, every head offloaded (or all but {@code resident=N} per layer) and staged per layer with the
     * next layer's prefetch on a second stream ({@link CudaHeadInferFactory}). Without a usable GPU,
     * asking for a factory throws {@link IllegalStateException} naming the reason.
     */
    public static final class HeadInferCuda implements HeadStoreProvider {
        private final String name;
        private final int residentHeads;
        private final int slotHeads;

        /** The provider instance {@link java.util.ServiceLoader} creates: every head offloaded. */
        public HeadInferCuda() {
            this("headinfer-cuda", 0, 0);
        }

        private HeadInferCuda(String name, int residentHeads, int slotHeads) {
            this.name = name;
            this.residentHeads = residentHeads;
            this.slotHeads = slotHeads;
        }

        @Override
        public String name() {
            return name;
        }

        @Override
        public String description() {
            return "exact binary16 rows, heads offloaded to pinned host memory and prefetched "
                    + (slotHeads == 0 ? "per layer" : slotHeads + " at a time")
                    + " to the GPU, attended there (HeadInfer)"
                    + residentNote(residentHeads);
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            io.kvcache4j.cuda.Device device = io.kvcache4j.cuda.CudaBackends.available()
                    .orElseThrow(() -> new IllegalStateException("storage '" + name + "' needs a CUDA GPU: "
                            + io.kvcache4j.cuda.CudaBackends.reason()
                            + "; use 'headinfer' for a fast tier in host memory"))
                    .device();
            return new CudaHeadInferFactory(device, new HeadInferConfig(residentHeads, 2 * slotHeads, pageTokens));
        }

        @Override
        public HeadStoreProvider withOptions(String name, java.util.Map<String, String> options) {
            java.util.Map<String, String> rest = new java.util.LinkedHashMap<>(options);
            String slot = rest.remove("slot");
            int slotHeads = 0;
            if (slot != null) {
                try {
                    slotHeads = Integer.parseInt(slot);
                } catch (NumberFormatException ex) {
                    slotHeads = -1;
                }
                if (slotHeads < 1 || slotHeads > 2048) {
                    throw new IllegalArgumentException("storage '" + name
                            + "': option slot (KV heads per staging slot) must be an integer in [1, kvHeads], was '"
                            + slot + "'");
                }
            }
            return new HeadInferCuda(name, residentOption(name, rest, "resident, slot"), slotHeads);
        }
    }

    private static String residentNote(int residentHeads) {
        return residentHeads == 0 ? "" : "; KV heads 0.." + (residentHeads - 1) + " of every layer resident";
    }

    /** The {@code resident} option of the HeadInfer kinds: KV heads per layer kept in the fast tier. */
    private static int residentOption(String name, java.util.Map<String, String> options, String allowed) {
        int resident = 0;
        for (java.util.Map.Entry<String, String> e : options.entrySet()) {
            if (!e.getKey().equals("resident")) {
                throw new IllegalArgumentException(
                        "storage '" + name + "': unknown option '" + e.getKey() + "'; options: " + allowed);
            }
            try {
                resident = Integer.parseInt(e.getValue());
            } catch (NumberFormatException ex) {
                throw new IllegalArgumentException("storage '" + name
                        + "': option resident must be an integer in [0, kvHeads], was '" + e.getValue() + "'");
            }
            if (resident < 0) {
                throw new IllegalArgumentException(
                        "storage '" + name + "': option resident must be in [0, kvHeads], was " + resident);
            }
        }
        return resident;
    }

    /** {@code retrieval}: sinks and recent window exact, top-k of the rest by an exact flat scan. */
    public static final class Retrieval implements HeadStoreProvider, SplitProvider {
        @Override
        public String name() {
            return "retrieval";
        }

        @Override
        public String description() {
            return "exact binary16 rows; sinks and recent window attended whole, top-k of the rest (RetrievalAttention)";
        }

        @Override
        public SplitFactory factory(int pageTokens) {
            return SplitFactory.retrieval(RetrievalConfig.defaults().withPageTokens(pageTokens));
        }

        /** The budget is the fast tier (sinks plus recent window); the default top-k on top. */
        @Override
        public boolean sizedByBudget() {
            return true;
        }

        @Override
        public SplitFactory factory(int pageTokens, Budget budget, int promptTokens) {
            return SplitFactory.retrieval(RetrievalConfig.forBudget(
                            budget.resolve(promptTokens),
                            RetrievalConfig.defaults().topK())
                    .withPageTokens(pageTokens));
        }
    }

    /**
     * {@code retrieval-roar}: {@code retrieval} with the slow tier's keys behind the query-guided
     * graph index of the retrieval-index module ({@code roar}) instead of an exact scan.
     */
    public static final class RetrievalRoar implements HeadStoreProvider {
        @Override
        public String name() {
            return "retrieval-roar";
        }

        @Override
        public String description() {
            return "retrieval with the slow tier's keys found through the roar graph index (RetrievalAttention)";
        }

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            return SplitFactory.retrieval(RetrievalConfig.defaults()
                    .withPageTokens(pageTokens)
                    .withSelector(IndexSelector.factory("roar", "")));
        }

        @Override
        public boolean sizedByBudget() {
            return true;
        }

        @Override
        public HeadStoreFactory factory(int pageTokens, Budget budget, int promptTokens) {
            return SplitFactory.retrieval(RetrievalConfig.forBudget(
                            budget.resolve(promptTokens),
                            RetrievalConfig.defaults().topK())
                    .withPageTokens(pageTokens)
                    .withSelector(IndexSelector.factory("roar", "")));
        }
    }

    /** {@code hgca}: recent window dense, salient older tokens per head sparse. */
    public static final class Hgca implements HeadStoreProvider, SplitProvider {
        @Override
        public String name() {
            return "hgca";
        }

        @Override
        public String description() {
            return "exact binary16 rows; recent window dense, per-head salient older tokens sparse (HGCA)";
        }

        @Override
        public SplitFactory factory(int pageTokens) {
            return SplitFactory.hgca(HgcaConfig.defaults().withPageTokens(pageTokens));
        }

        /** The budget is the dense fast tier (sinks plus recent window). */
        @Override
        public boolean sizedByBudget() {
            return true;
        }

        @Override
        public SplitFactory factory(int pageTokens, Budget budget, int promptTokens) {
            return SplitFactory.hgca(
                    HgcaConfig.forBudget(budget.resolve(promptTokens)).withPageTokens(pageTokens));
        }
    }

    /**
     * {@code retrieval} or {@code hgca} with the slow side kept by a quantizing storage found by name
     * (the quantization module's {@code int8} or {@code int4}, which must be installed): the older
     * tokens live as codes, selectors read their keys as the codec reproduces them, and the chosen
     * ones are attended on the codes. {@code --budget} is the f16 fast tier, as for the plain kinds.
     */
    abstract static class SplitWithCodec implements HeadStoreProvider {
        private final String split;
        private final String codec;

        SplitWithCodec(String split, String codec) {
            this.split = split;
            this.codec = codec;
        }

        @Override
        public String name() {
            return split + "+" + codec;
        }

        @Override
        public String description() {
            return split + " with the slow tier's tokens kept as " + codec + " codes (attended on the codes)";
        }

        /** The split kind with f16 slow pages, whose factories this one extends. */
        abstract SplitProvider plain();

        @Override
        public HeadStoreFactory factory(int pageTokens) {
            return plain().factory(pageTokens).withSlowStorage(HeadStores.factory(codec, pageTokens));
        }

        @Override
        public boolean sizedByBudget() {
            return true;
        }

        @Override
        public HeadStoreFactory factory(int pageTokens, Budget budget, int promptTokens) {
            return plain().factory(pageTokens, budget, promptTokens)
                    .withSlowStorage(HeadStores.factory(codec, pageTokens));
        }
    }

    /** {@code retrieval+int8}. */
    public static final class RetrievalInt8 extends SplitWithCodec {
        public RetrievalInt8() {
            super("retrieval", "int8");
        }

        @Override
        SplitProvider plain() {
            return new Retrieval();
        }
    }

    /** {@code retrieval+int4}. */
    public static final class RetrievalInt4 extends SplitWithCodec {
        public RetrievalInt4() {
            super("retrieval", "int4");
        }

        @Override
        SplitProvider plain() {
            return new Retrieval();
        }
    }

    /** {@code hgca+int8}. */
    public static final class HgcaInt8 extends SplitWithCodec {
        public HgcaInt8() {
            super("hgca", "int8");
        }

        @Override
        SplitProvider plain() {
            return new Hgca();
        }
    }

    /** {@code hgca+int4}. */
    public static final class HgcaInt4 extends SplitWithCodec {
        public HgcaInt4() {
            super("hgca", "int4");
        }

        @Override
        SplitProvider plain() {
            return new Hgca();
        }
    }

    /** A provider whose factories are {@link SplitFactory}s. */
    /**
     * {@code hgca-cuda} and {@code retrieval-cuda}: the split of {@code hgca} or {@code retrieval} with
     * the fast tier (sinks and recent window) on the GPU found by {@link
     * io.kvcache4j.cuda.CudaBackends#available()}, attended there, and the slow tier's sparse part on
     * CPU threads, merged on the device. Without a usable GPU, asking for a factory throws {@link
     * IllegalStateException} naming the reason.
     */
    abstract static class OnDevice implements HeadStoreProvider, SplitProvider {
        private final SplitProvider host;
        private final String hostName;

        OnDevice(SplitProvider host, String hostName) {
            this.host = host;
            this.hostName = hostName;
        }

        @Override
        public String name() {
            return hostName + "-cuda";
        }

        private io.kvcache4j.cuda.Device device() {
            return io.kvcache4j.cuda.CudaBackends.available()
                    .orElseThrow(() -> new IllegalStateException("storage '" + name() + "' needs a CUDA GPU: "
                            + io.kvcache4j.cuda.CudaBackends.reason() + "; use '" + hostName
                            + "' for a fast tier in host memory"))
                    .device();
        }

        @Override
        public SplitFactory factory(int pageTokens) {
            return host.factory(pageTokens).onDevice(device());
        }

        /** The budget is the fast tier on the GPU (sinks plus recent window). */
        @Override
        public boolean sizedByBudget() {
            return true;
        }

        @Override
        public SplitFactory factory(int pageTokens, Budget budget, int promptTokens) {
            return host.factory(pageTokens, budget, promptTokens).onDevice(device());
        }
    }

    /** {@code hgca-cuda}: {@code hgca} with the dense recent window on the GPU. */
    public static final class HgcaCuda extends OnDevice {
        /** The provider instance {@link java.util.ServiceLoader} creates. */
        public HgcaCuda() {
            super(new Hgca(), "hgca");
        }

        @Override
        public String description() {
            return "hgca with sinks and recent window attended on the GPU, per-head salient older tokens on CPU"
                    + " threads, merged on the device (HGCA)";
        }
    }

    /** {@code retrieval-cuda}: {@code retrieval} with sinks and recent window on the GPU. */
    public static final class RetrievalCuda extends OnDevice {
        /** The provider instance {@link java.util.ServiceLoader} creates. */
        public RetrievalCuda() {
            super(new Retrieval(), "retrieval");
        }

        @Override
        public String description() {
            return "retrieval with sinks and recent window attended on the GPU, the top-k of older tokens on CPU"
                    + " threads, merged on the device";
        }
    }

    interface SplitProvider {
        SplitFactory factory(int pageTokens);

        SplitFactory factory(int pageTokens, Budget budget, int promptTokens);
    }

    static int defaultPageTokens() {
        return KvCacheBuilder.DEFAULT_PAGE_TOKENS;
    }
}
