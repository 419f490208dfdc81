package io.kvcache4j.store;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvcache4j.TestSeeds;
import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.ModelShape;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * Misuse from several threads ends in an exception, never in a crash, a leak, or a wrong output
 * returned as valid: close racing calls in flight, two threads driving one cache, one thread per
 * layer, and double frees of native memory.
 */
class ConcurrentMisuseTest {
    static final ModelShape SHAPE = new ModelShape(4, 8, 2, 64);

    @Test
    void closeWhileAnotherThreadAttendsIsSafe() throws Exception {
        long seed = TestSeeds.seed("close-race");
        long before = NativeMemory.liveBytes();
        for (int round = 0; round < 12; round++) {
            SplittableRandom r = TestSeeds.random(seed + round);
            KvCache cache = KvCache.builder(SHAPE).build();
            float[] k = TestSeeds.floats(r, 512 * SHAPE.kvRowFloats(), 1);
            float[] q = TestSeeds.floats(r, SHAPE.queryRowFloats(), 1);
            for (int l = 0; l < SHAPE.layers(); l++) {
                cache.append(l, k, 0, k, 0, 512);
                cache.attend(
                        l,
                        TestSeeds.floats(r, 512 * SHAPE.queryRowFloats(), 1),
                        0,
                        512,
                        new float[512 * SHAPE.queryRowFloats()],
                        0);
            }
            AtomicReference<Throwable> unexpected = new AtomicReference<>();
            AtomicInteger refusals = new AtomicInteger();
            CountDownLatch started = new CountDownLatch(1);
            Thread worker = new Thread(() -> {
                float[] out = new float[SHAPE.queryRowFloats()];
                started.countDown();
                try {
                    for (int t = 0; ; t++) {
                        int l = t % SHAPE.layers();
                        cache.append(l, k, 0, k, 0, 1);
                        cache.attend(l, q, 0, 1, out, 0);
                    }
                } catch (IllegalStateException e) {
                    if (e.getMessage().equals("cache is closed")) {
                        refusals.incrementAndGet();
                    } else {
                        unexpected.set(e);
                    }
                } catch (Throwable e) {
                    unexpected.set(e);
                }
            });
            worker.start();
            started.await();
            Thread.sleep(round % 5);
            cache.close();
            worker.join(10_000);
            assertTrue(!worker.isAlive(), "worker still running, seed=" + seed);
            if (unexpected.get() != null) {
                throw new AssertionError("seed=" + seed + " round " + round, unexpected.get());
            }
            assertEquals(1, refusals.get(), "the worker ends with 'cache is closed'");
            assertEquals(before, NativeMemory.liveBytes(), "round " + round + ": memory freed exactly once");
        }
    }

    @Test
    void twoThreadsOnOneCacheGetExceptionsNotCorruption() throws Exception {
        long seed = TestSeeds.seed("two-drivers");
        long before = NativeMemory.liveBytes();
        try (KvCache cache = KvCache.builder(SHAPE).build()) {
            AtomicInteger refused = new AtomicInteger();
            AtomicInteger appended = new AtomicInteger();
            AtomicReference<Throwable> unexpected = new AtomicReference<>();
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < 2; i++) {
                SplittableRandom r = TestSeeds.random(seed + i);
                threads.add(new Thread(() -> {
                    float[] k = TestSeeds.floats(r, SHAPE.kvRowFloats(), 1);
                    float[] q = TestSeeds.floats(r, SHAPE.queryRowFloats(), 1);
                    float[] out = new float[SHAPE.queryRowFloats()];
                    for (int t = 0; t < 20_000; t++) {
                        try {
                            cache.append(0, k, 0, k, 0, 1);
                            appended.incrementAndGet();
                        } catch (IllegalStateException e) {
                            count(e, refused, unexpected);
                        }
                        try {
                            if (cache.pendingTokens(0) > 0) {
                                cache.attend(0, q, 0, 1, out, 0);
                            }
                        } catch (IllegalStateException e) {
                            count(e, refused, unexpected);
                        } catch (Throwable e) {
                            unexpected.set(e);
                        }
                    }
                }));
            }
            threads.forEach(Thread::start);
            for (Thread t : threads) {
                t.join();
            }
            if (unexpected.get() != null) {
                throw new AssertionError("seed=" + seed, unexpected.get());
            }
            // Whatever interleaving happened, the cache is consistent: every successful append is held.
            assertEquals(appended.get(), cache.nextPosition(0));
            assertEquals(appended.get(), cache.retainedTokens(0, 0));
            assertEquals(
                    PagedHeadStore.bytesFor(
                                    io.kvcache4j.api.KvDType.F16,
                                    64,
                                    io.kvcache4j.api.KvCacheBuilder.FULL_CACHE_PAGE_TOKENS,
                                    appended.get())
                            * 2,
                    cache.bytesHeld());
            System.out.println(
                    "[misuse] two drivers: " + refused.get() + " calls refused, " + appended.get() + " appends landed");
        }
        assertEquals(before, NativeMemory.liveBytes());
    }

    private static void count(IllegalStateException e, AtomicInteger refused, AtomicReference<Throwable> unexpected) {
        if (e.getMessage().startsWith("cache is in use by another thread")
                || e.getMessage().contains("appended tokens wait for attention")) {
            refused.incrementAndGet();
        } else {
            unexpected.set(e);
        }
    }

    @Test
    void oneThreadPerLayerEitherWaitsItsTurnOrGetsTheRightOutputs() throws Exception {
        long seed = TestSeeds.seed("thread-per-layer");
        int steps = 300;
        float[][] serial = runPerLayer(seed, steps, false);
        float[][] threaded = runPerLayer(seed, steps, true);
        for (int l = 0; l < SHAPE.layers(); l++) {
            assertArrayEquals(serial[l], threaded[l], "layer " + l + " seed=" + seed);
        }
    }

    /** Each layer's stream; with {@code threads}, one thread per layer retrying refused calls. */
    private static float[][] runPerLayer(long seed, int steps, boolean threads) throws Exception {
        float[][] outs = new float[SHAPE.layers()][steps * SHAPE.queryRowFloats()];
        try (KvCache cache = KvCache.builder(SHAPE).build()) {
            List<Thread> workers = new ArrayList<>();
            AtomicReference<Throwable> failure = new AtomicReference<>();
            for (int l = 0; l < SHAPE.layers(); l++) {
                int layer = l;
                Runnable work = () -> {
                    SplittableRandom r = TestSeeds.random(seed + layer);
                    for (int t = 0; t < steps; t++) {
                        float[] k = TestSeeds.floats(r, SHAPE.kvRowFloats(), 1);
                        float[] q = TestSeeds.floats(r, SHAPE.queryRowFloats(), 1);
                        retry(() -> cache.append(layer, k, 0, k, 0, 1));
                        int at = t * SHAPE.queryRowFloats();
                        retry(() -> cache.attend(layer, q, 0, 1, outs[layer], at));
                    }
                };
                if (threads) {
                    Thread th = new Thread(() -> {
                        try {
                            work.run();
                        } catch (Throwable e) {
                            failure.set(e);
                        }
                    });
                    workers.add(th);
                    th.start();
                } else {
                    work.run();
                }
            }
            for (Thread th : workers) {
                th.join();
            }
            if (failure.get() != null) {
                throw new AssertionError("seed=" + seed, failure.get());
            }
        }
        return outs;
    }

    private static void retry(Runnable call) {
        while (true) {
            try {
                call.run();
                return;
            } catch (IllegalStateException e) {
                if (!e.getMessage().startsWith("cache is in use by another thread")) {
                    throw e;
                }
                Thread.onSpinWait();
            }
        }
    }

    @Test
    void freeingTwiceOrAForeignSegmentThrows() {
        long before = NativeMemory.liveBytes();
        var block = NativeMemory.allocate(100);
        NativeMemory.free(block);
        var twice = assertThrows(IllegalStateException.class, () -> NativeMemory.free(block));
        assertTrue(twice.getMessage().contains("freed twice"), twice.getMessage());
        try (var arena = java.lang.foreign.Arena.ofConfined()) {
            var foreign = arena.allocate(64);
            assertThrows(IllegalStateException.class, () -> NativeMemory.free(foreign));
        }
        assertEquals(before, NativeMemory.liveBytes());
    }
}
