package io.kvcache4j.hybrid;

/**
 * Thrown when a {@link Tier} refuses an allocation beyond its capacity. The message names the tier,
 * the request, the bytes held and the capacity.
 */
public final class TierFullException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    private final long requestedBytes;
    private final long heldBytes;
    private final long capacityBytes;

    /** An exception for a request of {@code requestedBytes} to tier {@code tier}. */
    public TierFullException(String tier, long requestedBytes, long heldBytes, long capacityBytes) {
        super(tier + " tier is full: a block of " + requestedBytes + " bytes does not fit, " + heldBytes + " of its "
                + capacityBytes + " bytes are held (" + (capacityBytes - heldBytes) + " free)");
        this.requestedBytes = requestedBytes;
        this.heldBytes = heldBytes;
        this.capacityBytes = capacityBytes;
    }

    /** Bytes the refused block would have taken (rounded to the tier's alignment). */
    public long requestedBytes() {
        return requestedBytes;
    }

    /** Bytes the tier held when it refused. */
    public long heldBytes() {
        return heldBytes;
    }

    /** The tier's capacity. */
    public long capacityBytes() {
        return capacityBytes;
    }
}
