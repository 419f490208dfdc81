package io.kvcache4j.eval.cli;

import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.FullPolicy;
import io.kvcache4j.api.ModelShape;
import io.kvcache4j.eval.niah.PolicyFactory;
import java.util.List;

/** The policies the command line offers. */
final class Policies implements PolicyFactory {
    @Override
    public List<String> names() {
        return List.of("full");
    }

    @Override
    public EvictionPolicy create(String name, int budgetTokens, int promptTokens, ModelShape shape) {
        if (name.equals("full")) {
            return FullPolicy.INSTANCE;
        }
        throw new IllegalArgumentException("unknown policy '" + name + "'; available: " + names());
    }
}
