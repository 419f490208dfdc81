package io.kvcache4j.api;

/**
 * How the softmax mass that the query heads of one GQA group give a key is reduced to one score for
 * the KV head that stores the key.
 */
public enum ScoreAggregation {
    /** Sum over the group's query heads. */
    SUM,
    /** Mean over the group's query heads. */
    MEAN,
    /** Maximum over the group's query heads. */
    MAX
}
