package io.kvcache4j.hybrid;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.store.NativeMemory;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** Tiers: exact bytes, the fast tier's bound, transfers with explicit completion and bounded staging. */
class TierTest {

    @Test
    void tiersCountExactBytesAndRefuseBeyondCapacity() {
        long before = NativeMemory.liveBytes();
        FastTier fast = new FastTier(1000);
        MemorySegment a = fast.allocate(100);
        assertEquals(128, fast.bytesHeld(), "100 bytes round up to 2 cache lines");
        MemorySegment b = fast.allocate(800);
        assertEquals(128 + 832, fast.bytesHeld());
        var e = assertThrows(TierFullException.class, () -> fast.allocate(100));
        assertEquals(
                "fast tier is full: a block of 128 bytes does not fit, 960 of its 1000 bytes are held (40 free)",
                e.getMessage());
        assertEquals(960, fast.bytesHeld(), "a refusal allocates nothing");
        fast.free(a);
        fast.free(b);
        assertEquals(0, fast.bytesHeld());
        assertEquals(0, fast.blocksHeld());
        assertThrows(IllegalStateException.class, () -> fast.free(a));
        SlowTier slow = new SlowTier();
        MemorySegment c = slow.allocate(1);
        assertThrows(IllegalStateException.class, () -> fast.free(c), "a block of another tier");
        slow.free(c);
        assertEquals(before, NativeMemory.liveBytes());
        var bad = assertThrows(IllegalArgumentException.class, () -> new FastTier(0));
        assertEquals("fast tier capacityBytes must be in [1, 9223372036854775807], was 0", bad.getMessage());
    }

    @Test
    void transfersCompleteWithTheCopiedBytesAndStagingIsBounded() throws Exception {
        long seed = TestSeeds.seed("transfers");
        SplittableRandom r = TestSeeds.random(seed);
        long before = NativeMemory.liveBytes();
        SlowTier slow = new SlowTier();
        FastTier fast = new FastTier(1 << 20);
        MemorySegment[] blocks = new MemorySegment[3];
        for (int i = 0; i < 3; i++) {
            blocks[i] = slow.allocate(256);
            for (int j = 0; j < 64; j++) {
                blocks[i].setAtIndex(ValueLayout.JAVA_INT, j, r.nextInt());
            }
        }
        try (TransferEngine engine = new TransferEngine(fast, 2)) {
            Transfer t1 = engine.submit(blocks, 3, 256);
            Transfer t2 = engine.submit(blocks, 1, 256);
            Transfer t3 = engine.submit(blocks, 2, 256);
            MemorySegment s1 = t1.await();
            assertEquals(768, s1.byteSize());
            for (int i = 0; i < 3; i++) {
                assertArrayEquals(
                        blocks[i].toArray(ValueLayout.JAVA_BYTE),
                        s1.asSlice(i * 256L, 256).toArray(ValueLayout.JAVA_BYTE),
                        "block " + i + " seed=" + seed);
            }
            t2.await();
            Thread.sleep(50);
            assertFalse(t3.isDone(), "the third transfer waits for a free staging buffer");
            assertEquals(0, engine.freeBuffers());
            t1.release();
            assertEquals(512, t3.await().byteSize());
            assertTrue(t3.isDone());
            assertEquals(768 + 256 + 512, engine.bytesCopied());
            assertEquals(engine.stagingBytes(), fast.bytesHeld(), "staging is fast-tier memory");
            t2.release();
            t3.release();
            t3.release();
            assertEquals(2, engine.freeBuffers());
        }
        assertEquals(0, fast.bytesHeld(), "close returns every staging byte");
        for (MemorySegment b : blocks) {
            slow.free(b);
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    @Test
    void aStagingBufferBeyondTheFastTierFailsThatTransferOnly() {
        SlowTier slow = new SlowTier();
        FastTier fast = new FastTier(300);
        MemorySegment[] blocks = {slow.allocate(256), slow.allocate(256)};
        try (TransferEngine engine = new TransferEngine(fast, 1)) {
            Transfer big = engine.submit(blocks, 2, 256);
            var e = assertThrows(IllegalStateException.class, big::await);
            assertEquals(
                    "transfer of 512 bytes failed: fast tier is full: a block of 512 bytes does not fit, 0 of its 300"
                            + " bytes are held (300 free)",
                    e.getMessage());
            big.release();
            Transfer small = engine.submit(blocks, 1, 256);
            assertEquals(256, small.await().byteSize());
            small.release();
            Transfer queued = engine.submit(blocks, 1, 256);
            queued.cancel();
            queued.release();
        }
        assertEquals(0, fast.bytesHeld());
        slow.free(blocks[0]);
        slow.free(blocks[1]);
        var bad = assertThrows(IllegalArgumentException.class, () -> new TransferEngine(fast, 0));
        assertEquals("staging buffers must be in [1, 4096], was 0", bad.getMessage());
    }
}
