package io.kvcache4j.api;

/**
 * A named eviction policy that can be installed by putting a jar on the class path, listed in
 * {@code META-INF/services/io.kvcache4j.api.EvictionPolicyProvider}; {@link EvictionPolicies} finds
 * it with {@link java.util.ServiceLoader}. kv-api provides {@code full}; the eviction-policies module
 * the published algorithms.
 */
public interface EvictionPolicyProvider {

    /** The name used on the command line and in reports, lower case, e.g. {@code h2o}. */
    String name();

    /** One line on what the policy keeps. */
    String description();

    /**
     * The policy configured from a budget already resolved to tokens ({@link Budget#resolve}), with
     * every other parameter at its published default.
     *
     * @throws IllegalArgumentException if the budget is a fraction or the policy cannot honour it
     */
    EvictionPolicy create(Budget budget);
}
