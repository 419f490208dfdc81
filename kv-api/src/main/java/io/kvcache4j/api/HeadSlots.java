package io.kvcache4j.api;

/**
 * The token slots that one (layer, KV head) currently holds, as eviction policies see them. The
 * cache implements this over the head's store.
 *
 * <p>Slots are numbered {@code 0 .. count()-1}. Each slot has the token's original position (an
 * on-heap column owned by the cache, {@link #positions()}) and one value per metadata column that
 * policies registered. Removing slots moves the stored key and value, the position and every column
 * together, so a policy's per-slot metadata never goes out of step with the store.
 *
 * <p><b>Order.</b> Slots are in append order until {@link #evict(int)} moves the last slot into a
 * hole; {@link #evictAll} keeps the order of the rest.
 *
 * <p><b>Granularity.</b> When the store declares {@link #granularity()} {@code g > 1} (a codec that
 * packs groups of tokens), slots stay in append order, {@link #evict(int)} is not available, and
 * {@link #evictAll} takes only complete aligned groups {@code [k·g, (k+1)·g)}; a policy that wants
 * {@code n} tokens gone removes {@code ⌊n/g⌋} groups, so a head may hold up to {@code 3(g − 1)}
 * tokens more than its budget (the remainder, and the groups that straddle the edges of the sinks
 * and of the recent window).
 *
 * <p>Not thread-safe; used from the thread that drives the owning cache.
 */
public interface HeadSlots extends HeadView {

    /** Eviction granularity of the store, {@code >= 1}. */
    int granularity();

    /**
     * The positions column: element {@code i} is the position of slot {@code i} for {@code i <
     * count()}. Read-only for policies; the array may be replaced when the head grows, so fetch it
     * again after appends.
     */
    int[] positions();

    /**
     * Adds a {@code float} metadata column (initialised to 0 for every slot, present and future) and
     * returns its id. Register columns when binding, before tokens arrive.
     */
    int addFloatColumn();

    /** Adds a {@code long} metadata column; see {@link #addFloatColumn()}. */
    int addLongColumn();

    /**
     * The backing array of a float column: element {@code i} belongs to slot {@code i} for {@code i <
     * count()}. The array may be replaced when the store grows, so fetch it again after appends.
     */
    float[] floatColumn(int column);

    /** The backing array of a long column; see {@link #floatColumn(int)}. */
    long[] longColumn(int column);

    /**
     * Removes one slot. When at most one appended token is still waiting for its attention, this is
     * O(1): the last slot moves into {@code slot}. Otherwise it is order-preserving.
     *
     * @throws IndexOutOfBoundsException unless {@code 0 <= slot < count()}
     * @throws IllegalStateException if {@code slot} holds a token whose attention has not run yet, or
     *     the granularity is above 1
     */
    void evict(int slot);

    /**
     * Removes {@code n} slots given in strictly increasing order, keeping the order of the rest; pages
     * that become empty are freed at once.
     *
     * @throws IllegalArgumentException if the slots are not strictly increasing, or (granularity
     *     {@code g > 1}) do not form complete aligned groups
     * @throws IllegalStateException if a slot holds a token whose attention has not run yet
     */
    void evictAll(int[] sortedSlots, int n);

    /** Bytes the head's store holds now. */
    long bytesHeld();
}
