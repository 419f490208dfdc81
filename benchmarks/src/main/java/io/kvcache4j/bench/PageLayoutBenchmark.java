package io.kvcache4j.bench;

import io.kvcache4j.api.KvDType;
import io.kvcache4j.attention.AttentionKernels;
import io.kvcache4j.attention.GroupAttention;
import io.kvcache4j.store.PagedHeadStore;
import io.kvcache4j.store.SlotSelection;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
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
 * one page; chunked prefill of 64 tokens, runs of four; a store filled alone, one run. With {@code
 * placement=blocks} each page is a block of the C library, which in a fresh process hands out
 * consecutive blocks at increasing addresses, so only a run lies contiguous in memory; with {@code
 * regions} (the default placement) every store's pages are consecutive whatever the runs. Every
 * layout holds the same rows, so the outputs are the same bits.
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

    /**
     * {@code regions}: the stores' default placement, each store's pages at consecutive addresses of
     * its own reserved regions, whatever the order of allocation; {@code blocks}: every page its own
     * block from the C library.
     */
    @Param({"regions", "blocks"})
    public String placement;

    PagedHeadStore[] stores;
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
        boolean regions = switch (placement) {
            case "regions" -> true;
            case "blocks" -> false;
            default -> throw new IllegalArgumentException("placement must be regions or blocks, was " + placement);
        };
        // one generator per head: every layout holds the same rows, only their addresses differ
        stores = new PagedHeadStore[2];
        SplittableRandom[] rows = new SplittableRandom[stores.length];
        for (int h = 0; h < stores.length; h++) {
            stores[h] = new PagedHeadStore(KvDType.F16, HEAD_DIM, PAGE_TOKENS, AttentionKernels.get(), regions);
            rows[h] = new SplittableRandom(11 + h);
        }
        int run = runPages == 0 ? tokens : runPages * PAGE_TOKENS;
        float[] row = new float[HEAD_DIM];
        for (int first = 0; first < tokens; first += run) {
            for (int h = 0; h < stores.length; h++) {
                for (int t = first; t < Math.min(tokens, first + run); t++) {
                    for (int i = 0; i < HEAD_DIM; i++) {
                        row[i] = (float) rows[h].nextGaussian();
                    }
                    stores[h].append(row, 0, row, 0, 0, 1);
                }
            }
        }
        SplittableRandom r = new SplittableRandom(7);
        state = new GroupAttention(GROUP, HEAD_DIM);
        queries = new float[stores.length * GROUP * HEAD_DIM];
        for (int i = 0; i < queries.length; i++) {
            queries[i] = (float) r.nextGaussian();
        }
        out = new float[queries.length];
        scale = (float) (1 / Math.sqrt(HEAD_DIM));
    }

    /** One decode step's attention: each head's group over all of its tokens. */
    @Benchmark
    public float attend() {
        int groupFloats = GROUP * HEAD_DIM;
        for (int h = 0; h < stores.length; h++) {
            state.begin(queries, h * groupFloats, scale);
            stores[h].attend(state, all.prefix(tokens));
            state.finish(out, h * groupFloats);
        }
        return out[0] + out[out.length - 1];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (PagedHeadStore s : stores) {
            s.close();
        }
    }
}
