package io.kvcache4j.retrieval;

import java.util.SplittableRandom;

/**
 * Synthetic keys and queries of one attention head whose distributions differ, as RetrievalAttention
 * (arXiv 2409.10516) observes for real heads. Keys run in spans of 8–128 tokens on one of {@code
 * topics} low-rank topic directions (rank 16), plus a per-head mean key, four outlier channels of
 * large variance (the "massive" key channels that motivate KIVI's per-channel scales) and noise.
 * Queries aim at one topic through the same low-rank basis, with their own, larger mean, near-zero weight on the outlier channels, a second weaker topic and noise. So key–key
 * inner products are dominated by the mean and the outlier channels, query–key ones by the topic.
 * Seeded and deterministic.
 */
final class SyntheticAttention {
    final int n;
    final int d;
    final float[] keys;
    final int[] slots;
    private final int rank = 16;
    private final int topics;
    private final float[] basis; // d × rank
    private final float[] topicLatent; // topics × rank
    private final float[] meanQ;
    private final int[] keyTopicCount;
    private final int[] presentTopics;
    private final SplittableRandom random;

    SyntheticAttention(int n, int d, long seed) {
        this.n = n;
        this.d = d;
        this.random = new SplittableRandom(seed);
        this.topics = Math.max(16, n / 128);
        basis = new float[d * rank];
        for (int i = 0; i < basis.length; i++) {
            basis[i] = (float) (random.nextGaussian() / Math.sqrt(rank));
        }
        topicLatent = new float[topics * rank];
        for (int i = 0; i < topicLatent.length; i++) {
            topicLatent[i] = (float) random.nextGaussian();
        }
        float[] meanK = new float[d];
        meanQ = new float[d];
        for (int j = 0; j < d; j++) {
            meanK[j] = (float) (1.5 * random.nextGaussian());
            meanQ[j] = (float) (1.0 * random.nextGaussian());
        }
        keys = new float[n * d];
        slots = new int[n];
        keyTopicCount = new int[topics];
        int pos = 0;
        float[] latent = new float[rank];
        while (pos < n) {
            int span = Math.min(n - pos, 8 + random.nextInt(121));
            int t = random.nextInt(topics);
            keyTopicCount[t] += span;
            for (int p = pos; p < pos + span; p++) {
                slots[p] = p;
                for (int r = 0; r < rank; r++) {
                    latent[r] = 2f * topicLatent[t * rank + r] + (float) (0.6 * random.nextGaussian());
                }
                for (int j = 0; j < d; j++) {
                    float v = meanK[j] + project(latent, j) + (float) (0.3 * random.nextGaussian());
                    if (j < 4) {
                        v += (float) (6 * random.nextGaussian());
                    }
                    keys[p * d + j] = v;
                }
            }
            pos += span;
        }
        int c = 0;
        for (int t = 0; t < topics; t++) {
            c += keyTopicCount[t] > 0 ? 1 : 0;
        }
        presentTopics = new int[c];
        c = 0;
        for (int t = 0; t < topics; t++) {
            if (keyTopicCount[t] > 0) {
                presentTopics[c++] = t;
            }
        }
    }

    private float project(float[] latent, int j) {
        float s = 0;
        for (int r = 0; r < rank; r++) {
            s += basis[j * rank + r] * latent[r];
        }
        return s;
    }

    /** {@code count} queries drawn from the query distribution (the generator's stream continues). */
    float[] queries(int count) {
        float[] q = new float[count * d];
        float[] latent = new float[rank];
        for (int i = 0; i < count; i++) {
            int t1 = presentTopics[random.nextInt(presentTopics.length)];
            int t2 = presentTopics[random.nextInt(presentTopics.length)];
            for (int r = 0; r < rank; r++) {
                latent[r] = 2.5f * topicLatent[t1 * rank + r]
                        + 0.8f * topicLatent[t2 * rank + r]
                        + (float) (0.5 * random.nextGaussian());
            }
            for (int j = 0; j < d; j++) {
                float v = 3f * meanQ[j] + project(latent, j) + (float) (0.5 * random.nextGaussian());
                if (j < 4) {
                    v *= 0.05f;
                }
                q[i * d + j] = v;
            }
        }
        return q;
    }

    /** Row {@code i} of {@code rows}. */
    float[] row(float[] rows, int i) {
        float[] r = new float[d];
        System.arraycopy(rows, i * d, r, 0, d);
        return r;
    }
}
