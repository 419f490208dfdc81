package io.kvcache4j.api;

/**
 * Read access to the tokens one (layer, KV head) holds, for engines that run attention themselves
 * and for reports. Slot {@code i} holds the token at {@link #position(int)}; keys are post-RoPE and
 * read back as the store reproduces them (exactly for exact storage, decoded for a codec).
 *
 * <p>A view is valid while its cache is open and is driven by the cache's thread; a call after the
 * cache was closed, or while another thread is inside the cache, throws {@link
 * IllegalStateException}.
 */
public interface HeadView {

    /** Slots held. */
    int count();

    /** Original position of the token in {@code slot}. */
    int position(int slot);

    /** Copies the key of {@code slot}, widened to float, into {@code dst[offset..offset+headDim)}. */
    void readKey(int slot, float[] dst, int offset);

    /** Copies the value of {@code slot}, widened to float, into {@code dst[offset..offset+headDim)}. */
    void readValue(int slot, float[] dst, int offset);
}
