package io.kvcache4j.eval.niah;

import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.ModelShape;
import java.util.List;

/** Creates eviction policies by command-line name for a budget in tokens. */
public interface PolicyFactory {
    /** Every name {@link #create} accepts, {@code full} first. */
    List<String> names();

    /**
     * A policy named {@code name} that keeps at most {@code budgetTokens} tokens per (layer, KV head)
     * (plus its declared window) for a prompt of {@code promptTokens}.
     *
     * @throws IllegalArgumentException for an unknown name or an impossible budget
     */
    EvictionPolicy create(String name, int budgetTokens, int promptTokens, ModelShape shape);
}
