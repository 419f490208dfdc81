package io.kvcache4j.api;

/**
 * The token slots that one (layer, KV head) currently holds, as eviction policies see them.
 *
 * <p>Slots are numbered {@code 0 .. count()-1}. Each slot holds a key row, a value row, the token's
 * original position, and one value per metadata column that policies registered. Removing slots
 * moves the key, value, position and every column together, so a policy's per-slot metadata never
 * goes out of step with the store. Slot order is not position order after {@link #evict(int)}.
 *
 * <p>Not thread-safe; used from the thread that drives the owning cache.
 */
public interface HeadSlots extends HeadView {

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
     * @throws IllegalStateException if {@code slot} holds a token whose attention has not run yet
     */
    void evict(int slot);

    /**
     * Removes {@code n} slots given in strictly increasing order, keeping the order of the rest; pages
     * that become empty are freed at once.
     */
    void evictAll(int[] sortedSlots, int n);

    /** Off-heap bytes this head's pages hold now. */
    long bytesHeld();
}
