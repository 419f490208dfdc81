package io.kvcache4j.eviction;

import io.kvcache4j.api.EvictionPolicy;
import io.kvcache4j.api.FullPolicy;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * The one way to build a policy by name, as the command line and the NIAH harness do:
 * {@code create("h2o", PolicyConfig.builder().budgetFraction(0.2, promptTokens).build())}.
 *
 * <table>
 *   <caption>Policies and their cadence</caption>
 *   <tr><th>name</th><th>class</th><th>cadence</th></tr>
 *   <tr><td>{@code full}</td><td>{@link FullPolicy}</td><td>never evicts (config ignored)</td></tr>
 *   <tr><td>{@code streaming}</td><td>{@link StreamingLlmPolicy}</td><td>every step</td></tr>
 *   <tr><td>{@code h2o}</td><td>{@link H2OPolicy}</td><td>every step, after attention</td></tr>
 *   <tr><td>{@code h2o-prefill}</td><td>{@link H2OPrefillPolicy}</td><td>once, after prefill</td></tr>
 *   <tr><td>{@code snapkv}</td><td>{@link SnapKvPolicy}</td><td>once, after prefill</td></tr>
 *   <tr><td>{@code hashevict}</td><td>{@link HashEvictPolicy}</td><td>every step, before attention</td></tr>
 *   <tr><td>{@code lazy}</td><td>{@link LazyEvictionPolicy}</td><td>lagged: once per W steps</td></tr>
 *   <tr><td>{@code pyramidinfer}</td><td>{@link PyramidInferPolicy}</td><td>after prefill, then every
 *       16 generated tokens</td></tr>
 * </table>
 *
 * <p>Thread-safe.
 */
public final class EvictionPolicies {
    private static final List<String> NAMES =
            List.of("full", "streaming", "h2o", "h2o-prefill", "snapkv", "hashevict", "lazy", "pyramidinfer");

    private EvictionPolicies() {}

    /** Every name {@link #create} accepts, in a fixed order ({@code full} first). */
    public static List<String> names() {
        return NAMES;
    }

    /**
     * Creates the policy {@code name} (case-insensitive) from {@code config}.
     *
     * @throws IllegalArgumentException for an unknown name, or a configuration the policy cannot
     *     honour (the message names the value and the allowed range)
     */
    public static EvictionPolicy create(String name, PolicyConfig config) {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(config, "config");
        return switch (name.trim().toLowerCase(Locale.ROOT)) {
            case "full" -> FullPolicy.INSTANCE;
            case "streaming" -> new StreamingLlmPolicy(config);
            case "h2o" -> new H2OPolicy(config);
            case "h2o-prefill" -> new H2OPrefillPolicy(config);
            case "snapkv" -> new SnapKvPolicy(config);
            case "hashevict" -> new HashEvictPolicy(config);
            case "lazy" -> new LazyEvictionPolicy(config);
            case "pyramidinfer" -> new PyramidInferPolicy(config);
            default ->
                throw new IllegalArgumentException(
                        "unknown eviction policy '" + name + "'; allowed: " + String.join(", ", NAMES));
        };
    }
}
