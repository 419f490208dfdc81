package io.kvcache4j.store;

import io.kvcache4j.attention.AttentionKernel;
import io.kvcache4j.attention.AttentionKernels;

final class AttentionKernelsAccess {
    private AttentionKernelsAccess() {}

    static AttentionKernel kernel() {
        return AttentionKernels.get();
    }
}
