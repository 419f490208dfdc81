package io.kvcache4j.eval.cli;

import io.kvcache4j.api.Budget;
import io.kvcache4j.api.EvictionPolicies;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.eval.niah.NiahMode;
import io.kvcache4j.eval.niah.NiahOptions;
import io.kvcache4j.eval.niah.NiahRunner;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/**
 * The typed values of the command line, each checked as it is converted, so that a bad value fails
 * before any work. A converter's message says what is wrong with the value and what is allowed; the
 * command line puts the option and the value in front ({@code --budget 1.5: ...}).
 */
final class Converters {
    private Converters() {}

    /** A whole number in [min, max]; {@code noun} (e.g. {@code "length "}) goes before the value in messages. */
    abstract static class BoundedInt implements ITypeConverter<Integer> {
        private final int min;
        private final int max;
        private final String noun;

        BoundedInt(int min, int max) {
            this(min, max, "");
        }

        BoundedInt(int min, int max, String noun) {
            this.min = min;
            this.max = max;
            this.noun = noun;
        }

        @Override
        public Integer convert(String value) {
            return parseInt(value, min, max, noun);
        }
    }

    static int parseInt(String value, int min, int max, String noun) {
        long x;
        try {
            x = Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            throw new TypeConversionException(
                    "'" + value + "' is not a whole number; allowed: [" + min + ", " + max + "]");
        }
        if (x < min || x > max) {
            throw new TypeConversionException(
                    noun + value.trim() + " is out of range; allowed: [" + min + ", " + max + "]");
        }
        return (int) x;
    }

    static double parseFinite(String value, String allowed) {
        double x;
        try {
            x = Double.parseDouble(value.trim());
        } catch (NumberFormatException e) {
            throw new TypeConversionException("'" + value + "' is not a number; allowed: " + allowed);
        }
        if (!Double.isFinite(x)) {
            throw new TypeConversionException("'" + value + "' is not finite; allowed: " + allowed);
        }
        return x;
    }

    /** A seed: any whole number a {@code long} holds. */
    static final class Seed implements ITypeConverter<Long> {
        @Override
        public Long convert(String value) {
            try {
                return Long.parseLong(value.trim());
            } catch (NumberFormatException e) {
                throw new TypeConversionException("'" + value + "' is not a whole number; allowed: [" + Long.MIN_VALUE
                        + ", " + Long.MAX_VALUE + "]");
            }
        }
    }

    static final class Samples extends BoundedInt {
        Samples() {
            super(1, NiahCommand.MAX_SAMPLES);
        }
    }

    static final class Threads extends BoundedInt {
        Threads() {
            super(1, NiahCommand.MAX_THREADS);
        }
    }

    static final class NewTokens extends BoundedInt {
        NewTokens() {
            super(1, NiahCommand.MAX_NEW_TOKENS);
        }
    }

    static final class Length extends BoundedInt {
        Length() {
            super(NiahCommand.MIN_LENGTH, NiahCommand.MAX_LENGTH, "length ");
        }
    }

    static final class MaxTokens extends BoundedInt {
        MaxTokens() {
            super(1, GenerateCommand.MAX_TOKENS);
        }
    }

    static final class Chunk extends BoundedInt {
        Chunk() {
            super(1, GenerateCommand.MAX_CHUNK);
        }
    }

    static final class Elements extends BoundedInt {
        Elements() {
            super(0, InspectCommand.MAX_ELEMENTS);
        }
    }

    /**
     * A budget as {@link Budget#parse} reads it: a fraction of the prompt in (0, 1) or whole tokens,
     * enough for the sinks and the recent window. {@code niah} keeps the number.
     */
    static final class BudgetNumber implements ITypeConverter<Double> {
        @Override
        public Double convert(String value) {
            Budget b = parse(value);
            return b.isFraction() ? b.fraction() : (double) b.tokens();
        }
    }

    /** A budget as {@link Budget#parse} reads it, for {@code generate}. */
    static final class BudgetSpec implements ITypeConverter<Budget> {
        @Override
        public Budget convert(String value) {
            return parse(value);
        }
    }

    static Budget parse(String value) {
        try {
            return Budget.parse(value);
        } catch (IllegalArgumentException e) {
            throw new TypeConversionException(e.getMessage());
        }
    }

    /** An installed eviction policy ({@link EvictionPolicies#names()}), as its lower-case name. */
    static final class Policy implements ITypeConverter<String> {
        @Override
        public String convert(String value) {
            try {
                return EvictionPolicies.provider(value.trim()).name().toLowerCase(Locale.ROOT);
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }

    /**
     * {@code none}, an installed storage kind ({@link NiahRunner#quantNames()}) or one with options
     * ({@code int4:g=64:r=0}).
     */
    static final class Quant implements ITypeConverter<String> {
        @Override
        public String convert(String value) {
            String name = value.trim().toLowerCase(Locale.ROOT);
            List<String> installed = NiahRunner.quantNames();
            if (!installed.contains(name)) {
                if (name.indexOf(':') < 0) {
                    throw new TypeConversionException(
                            "unknown quant '" + value + "'; installed: " + String.join(", ", installed));
                }
                try {
                    io.kvcache4j.store.HeadStores.provider(name);
                } catch (IllegalArgumentException e) {
                    throw new TypeConversionException(e.getMessage());
                }
            }
            return name;
        }
    }

    static final class Mode implements ITypeConverter<NiahMode> {
        @Override
        public NiahMode convert(String value) {
            try {
                return NiahMode.parse(value.trim());
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }

    static final class DType implements ITypeConverter<KvDType> {
        @Override
        public KvDType convert(String value) {
            try {
                return KvDType.parse(value.trim());
            } catch (IllegalArgumentException e) {
                throw new TypeConversionException(e.getMessage());
            }
        }
    }

    /** A sampling temperature: 0 (greedy) or a number above 0 that a {@code float} holds. */
    static final class Temperature implements ITypeConverter<Float> {
        @Override
        public Float convert(String value) {
            String allowed = "0 (greedy) or a finite number > 0, at most " + Float.MAX_VALUE;
            double t = parseFinite(value, allowed);
            if (t < 0 || !Float.isFinite((float) t)) {
                throw new TypeConversionException(value.trim() + " is out of range; allowed: " + allowed);
            }
            return (float) t;
        }
    }

    /**
     * {@code --depths}: a count N of evenly spaced depths from 0 to 1, or a comma-separated list of
     * fractions in [0, 1] (a single value with a decimal point is a list of one).
     */
    static final class Depths implements ITypeConverter<DepthList> {
        @Override
        public DepthList convert(String value) {
            String s = value.trim();
            int max = NiahCommand.MAX_DEPTHS;
            if (!s.contains(",") && !s.contains(".")) {
                long n;
                try {
                    n = Long.parseLong(s);
                } catch (NumberFormatException e) {
                    throw new TypeConversionException(
                            "'" + value + "' is neither a count in [1, " + max + "] nor a list of fractions in [0, 1]");
                }
                if (n < 1 || n > max) {
                    throw new TypeConversionException(
                            "count " + n + " is out of range; allowed: [1, " + max + "] (or a list of fractions)");
                }
                return new DepthList(NiahOptions.evenDepths((int) n));
            }
            String[] parts = s.split(",", -1);
            if (parts.length > max) {
                throw new TypeConversionException(parts.length + " depths; at most " + max + " allowed");
            }
            List<Double> out = new ArrayList<>();
            for (String p : parts) {
                double d = parseFinite(p, "a count in [1, " + max + "] or fractions in [0, 1]");
                if (d < 0 || d > 1) {
                    throw new TypeConversionException(String.format(
                            Locale.ROOT, "depth %s is out of range; allowed: fractions in [0, 1]", p.trim()));
                }
                if (out.contains(d)) {
                    throw new TypeConversionException("depth " + p.trim() + " is listed twice");
                }
                out.add(d);
            }
            return new DepthList(out);
        }
    }

    /** The depths {@code --depths} stands for. */
    record DepthList(List<Double> depths) {}
}
