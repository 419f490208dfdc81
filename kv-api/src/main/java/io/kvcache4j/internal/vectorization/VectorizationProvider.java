package io.kvcache4j.internal.vectorization;

import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;

/**
 * Hands out the support objects of one implementation family, the way Lucene's {@code
 * VectorizationProvider} does: {@link #attention()} (the paged attention scan and its online
 * softmax), {@link #vectorUtil()} (dot products) and {@link #conversion()} (f16/bf16 rows). {@link
 * #getInstance()} is the family chosen once per process ({@link AttentionKernels} logs the choice and
 * why: the Vector API when {@code jdk.incubator.vector} is in the boot layer and C2 is present, else
 * the scalar twins; {@code -Dkvcache4j.kernel=panama|scalar} forces it); {@link #scalar()} is always
 * the portable family, for differential tests.
 *
 * <p>Internal: exported to kvcache4j's own modules only. Thread-safe.
 */
public final class VectorizationProvider {
    private final AttentionKernel attention;
    private final VectorUtilSupport vectorUtil;
    private final ConversionSupport conversion;

    private VectorizationProvider(AttentionKernel kernel) {
        this.attention = kernel;
        // Both kernel families implement the three supports.
        this.vectorUtil = (VectorUtilSupport) kernel;
        this.conversion = (ConversionSupport) kernel;
    }

    /** The family chosen for this process. */
    public static VectorizationProvider getInstance() {
        return Holder.CHOSEN;
    }

    /** The scalar family, always available. */
    public static VectorizationProvider scalar() {
        return Holder.SCALAR;
    }

    /** {@code panama} or {@code scalar}. */
    public String name() {
        return attention.name();
    }

    public AttentionKernel attention() {
        return attention;
    }

    public VectorUtilSupport vectorUtil() {
        return vectorUtil;
    }

    public ConversionSupport conversion() {
        return conversion;
    }

    private static final class Holder {
        static final VectorizationProvider CHOSEN = new VectorizationProvider(AttentionKernels.get());
        static final VectorizationProvider SCALAR = new VectorizationProvider(AttentionKernels.scalar());
    }
}
