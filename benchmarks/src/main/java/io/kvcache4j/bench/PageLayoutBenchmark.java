package io.kvcache4j.bench;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What the placement of a store's pages in memory costs attention. Two KV heads of {@code tokens}
 * f16 tokens each (headDim 128, group 4, pages of 16 tokens: 8 KB each), attended one after the
 * other as a decode step does; the only difference between the parameters is the order in which
 * the two stores allocated their pages: {@code runPages} pages of one head, then as many of the
 * other, and so on. A cache that appends one token at a time to every head allocates in runs of
 * one page; chunked prefill of 64 tokens, runs of four; a store filled alone, one run. In {@link
 * #blocks} each page is a block of the C library, which in a fresh process hands out consecutive
 * blocks at increasing addresses, so only a run lies contiguous in memory; in {@link #regions} (the
 * stores' default placement) every store's pages are consecutive whatever the runs. Every layout and
 * placement holds the same rows, so the outputs are the same bits.
 * At 2K tokens per head (2 MB in all) the pages stay in the last-level cache, so the time is how well
 * the hardware prefetcher hides that cache's latency.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 5, time = 300, timeUnit = TimeUnit.MILLISECONDS)
@Measurement(iterations = 10, time = 300, timeUnit = TimeUnit.MILLISECONDS)
@Fork(
        value = 1,
        jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xms1g", "-Xmx1g"
        })
public class PageLayoutBenchmark {
    static final int HEAD_DIM = 128;
    static final int GROUP = 4;
    static final int PAGE_TOKENS = 16;

    @Param({"2048"})
    public int tokens;

    /** Pages one head allocates before the other takes its turn; 0: each head's pages in one run. */
    @Param({"1", "4", "16", "0"})
    public int runPages;

    /** Each head's store with its pages in reserved regions (the default placement). */
    PagedHeadStore[] regions;
    /** The same rows in stores whose every page is a block of the C library. */
    PagedHeadStore[] blocks;

    GroupAttention state;
    float[] queries;
    float[] out;
    float scale;
    final SlotSelection all = new SlotSelection();

    @Setup(Level.Trial)
    public void setup() {
        if (runPages < 0) {
            throw new IllegalArgumentException("runPages must be >= 0, was " + runPages);
        }
        // one generator per head: both placements and every layout hold the same rows
        regions = new PagedHeadStore[2];
        blocks = new PagedHeadStore[2];
        SplittableRandom[] rows = new SplittableRandom[regions.length];
        for (int h = 0; h < regions.length; h++) {
            regions[h] = new PagedHeadStore(KvDType.F16, HEAD_DIM, PAGE_TOKENS, AttentionKernels.get(), true);
            blocks[h] = new PagedHeadStore(KvDType.F16, HEAD_DIM, PAGE_TOKENS, AttentionKernels.get(), false);
            rows[h] = new SplittableRandom(11 + h);
        }
        int run = runPages == 0 ? tokens : runPages * PAGE_TOKENS;
        float[] row = new float[HEAD_DIM];
        for (int first = 0; first < tokens; first += run) {
            for (int h = 0; h < regions.length; h++) {
                for (int t = first; t < Math.min(tokens, first + run); t++) {
                    for (int i = 0; i < HEAD_DIM; i++) {
                        row[i] = (float) rows[h].nextGaussian();
                    }
                    regions[h].append(row, 0, row, 0, 0, 1);
                    blocks[h].append(row, 0, row, 0, 0, 1);
                }
            }
        }
        SplittableRandom r = new SplittableRandom(7);
        state = new GroupAttention(GROUP, HEAD_DIM);
        queries = new float[regions.length * GROUP * HEAD_DIM];
        for (int i = 0; i < queries.length; i++) {
            queries[i] = (float) r.nextGaussian();
        }
        out = new float[queries.length];
        scale = (float) (1 / Math.sqrt(HEAD_DIM));
    }

    /** One decode step's attention over {@code stores}: each head's group over all of its tokens. */
    float attend(PagedHeadStore[] stores) {
        int groupFloats = GROUP * HEAD_DIM;
        for (int h = 0; h < stores.length; h++) {
            state.begin(queries, h * groupFloats, scale);
            stores[h].attend(state, all.prefix(tokens));
            state.finish(out, h * groupFloats);
        }
        return out[0] + out[out.length - 1];
    }

    @Benchmark
    public float regions() {
        return attend(regions);
    }

    @Benchmark
    public float blocks() {
        return attend(blocks);
    }

    /** Nanoseconds of each placement's runs in {@link #paired}, summed over an iteration. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class PlacementTimes {
        public long regionsNs;
        public long blocksNs;

        @Setup(Level.Iteration)
        public void reset() {
            regionsNs = 0;
            blocksNs = 0;
        }
    }

    static final int PAIRED_STEPS = 32;

    /**
     * {@value #PAIRED_STEPS} steps over the blocks, then as many over the regions, each run timed into
     * its counter: {@code blocksNs / regionsNs} of one iteration compares the placements with the
     * machine's drift cancelled, as {@link EvictionBenchmark#interleaved} does for the policies.
     */
    @Benchmark
    public float paired(PlacementTimes t) {
        float x = 0;
        long t0 = System.nanoTime();
        for (int i = 0; i < PAIRED_STEPS; i++) {
            x += attend(blocks);
        }
        long t1 = System.nanoTime();
        for (int i = 0; i < PAIRED_STEPS; i++) {
            x += attend(regions);
        }
        long t2 = System.nanoTime();
        t.blocksNs += t1 - t0;
        t.regionsNs += t2 - t1;
        return x;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (PagedHeadStore s : regions) {
            s.close();
        }
        for (PagedHeadStore s : blocks) {
            s.close();
        }
    }
}
