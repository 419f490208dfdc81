package io.kvcache4j.api;

/**
 * Attention geometry of a decoder-only transformer, as far as the KV cache is concerned.
 *
 * @param layers number of transformer layers (each has its own cache)
 * @param queryHeads number of query heads per layer
 * @param kvHeads number of key/value heads per layer; {@code queryHeads} must be a multiple of it
 *     (grouped-query attention; {@code kvHeads == queryHeads} is multi-head attention)
 * @param headDim elements per head vector
 */
public record ModelShape(int layers, int queryHeads, int kvHeads, int headDim) {

    /** Validates the shape; every count must be positive and the query heads must group evenly. */
    public ModelShape {
        requirePositive("layers", layers);
        requirePositive("queryHeads", queryHeads);
        requirePositive("kvHeads", kvHeads);
        requirePositive("headDim", headDim);
        if (queryHeads % kvHeads != 0) {
            throw new IllegalArgumentException(
                    "queryHeads " + queryHeads + " must be a multiple of kvHeads " + kvHeads);
        }
    }

    /** Query heads that share one KV head. */
    public int groupSize() {
        return queryHeads / kvHeads;
    }

    /** Floats in one token's key (or value) row of the exchange layout: {@code kvHeads * headDim}. */
    public int kvRowFloats() {
        return kvHeads * headDim;
    }

    /** Floats in one token's query row: {@code queryHeads * headDim}. */
    public int queryRowFloats() {
        return queryHeads * headDim;
    }

    /** Throws unless {@code 0 <= layer < layers}. */
    public void checkLayer(int layer) {
        if (layer < 0 || layer >= layers) {
            throw new IndexOutOfBoundsException("layer " + layer + " out of range [0, " + layers + ")");
        }
    }

    /** Throws unless {@code 0 <= kvHead < kvHeads}. */
    public void checkKvHead(int kvHead) {
        if (kvHead < 0 || kvHead >= kvHeads) {
            throw new IndexOutOfBoundsException("kvHead " + kvHead + " out of range [0, " + kvHeads + ")");
        }
    }

    private static void requirePositive(String name, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException(name + " must be >= 1, was " + value);
        }
    }
}
