package io.kvcache4j.cuda;

/** Float64 attention over the stored (already rounded) rows of a {@link KernelHarness.Problem}: the judge. */
final class Reference {
    private Reference() {}

    /** Element accessor of a head's rows. */
    interface Rows {
        float get(int h, int slot, int i, boolean value);
    }

    static KernelHarness.Result decode(KernelHarness.Problem p) {
        return decode(p.tokens(), p.kvHeads(), p.group(), p.headDim(), p.queries(), p.visible(), p.scale(), p::element);
    }

    static KernelHarness.Result decode(
            int tokens, int kvHeads, int group, int d, float[] queries, int[] visible, float scale, Rows rows) {
        int qh = kvHeads * group;
        float[] out = new float[tokens * qh * d];
        float[] lse = new float[tokens * qh];
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < kvHeads; h++) {
                int vis = visible[t * kvHeads + h];
                for (int g = 0; g < group; g++) {
                    int row = t * qh + h * group + g;
                    if (vis == 0) {
                        lse[row] = Float.NEGATIVE_INFINITY;
                        continue;
                    }
                    double[] s = new double[vis];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < vis; j++) {
                        double acc = 0;
                        for (int i = 0; i < d; i++) {
                            acc += (double) (queries[row * d + i] * scale) * rows.get(h, j, i, false);
                        }
                        s[j] = acc;
                        max = Math.max(max, acc);
                    }
                    double sum = 0;
                    for (int j = 0; j < vis; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int i = 0; i < d; i++) {
                        double acc = 0;
                        for (int j = 0; j < vis; j++) {
                            acc += s[j] * rows.get(h, j, i, true);
                        }
                        out[row * d + i] = (float) (acc / sum);
                    }
                    lse[row] = (float) (max + Math.log(sum));
                }
            }
        }
        return new KernelHarness.Result(out, lse);
    }
}
