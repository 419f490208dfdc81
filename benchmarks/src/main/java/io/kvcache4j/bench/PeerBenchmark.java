package io.kvcache4j.bench;

import io.kvcache4j.api.KvCache;
import io.kvcache4j.api.KvDType;
import io.kvcache4j.eval.gguf.GgmlType;
import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.gguf.GgufTensorInfo;
import io.kvcache4j.eval.gguf.GgufValue;
import io.kvcache4j.eval.gguf.GgufWriter;
import io.kvcache4j.eval.llama.GgufLlama;
import io.kvcache4j.eval.llama.LlamaConfig;
import io.kvcache4j.eval.llama.LlamaEngine;
import io.kvcache4j.eval.llama.RandomLlamaGguf;
import io.kvcache4j.eval.niah.Haystack;
import io.kvcache4j.eval.niah.Needle;
import io.kvcache4j.eval.niah.NiahPrompt;
import io.kvcache4j.eval.niah.TextCodec;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.ValueLayout;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Collectors;

/**
 * {@code bin/kvcache4j bench --peers}: the reference engine with a full f16 cache against llama.cpp
 * (node-llama-cpp's prebuilt CPU binary, driven by {@code benchmarks/peers/llama-cpp/bench.mjs}) on
 * the same GGUF files and the same prompt token ids, prefill and decode tokens/s at the same thread
 * count, in one run.
 *
 * <p>Two models: the shipped one ({@code model/kvcache4j-niah.gguf}) on a NIAH prompt of about 4K
 * tokens, where llama.cpp's greedy tokens from an untimed pass are compared with ours before llama.cpp
 * is timed (a pair that disagrees is reported as such and not timed); and a
 * random-weight Llama (4 layers, d 512, 8 query / 2 KV heads, head 64, F16 matrices, the shipped
 * tokenizer) at a long context (32K tokens by default), where attention dominates a decode step.
 * Each engine runs in its own process: ours in a child JVM with the Vector API, {@code
 * -XX:ActiveProcessorCount=T} and common fork-join parallelism {@code T}; llama.cpp with {@code
 * n_threads = T}; both pinned to {@code T} CPUs with {@code taskset} when {@code T} is below the
 * machine's count.
 *
 * <p>Options: {@code --out DIR}, {@code --threads LIST} (default: the machine's CPU count), {@code
 * --prompt N} (shipped-model prompt, default 4032), {@code --long-context N} (default 32768; 0 skips
 * the long model), {@code --decode N} (default 64), {@code --long-decode N} (default 32), {@code
 * --check N} (greedy tokens compared, default 16), {@code --reps N} (shipped model, default 8; the long
 * model runs once), {@code --batch N} (prefill batch of both engines, default 512).
 *
 * <p>Our engine runs in a fresh JVM, whose first prompts run partly in the interpreter and in C1 code
 * (where the Vector API is not intrinsified) while C2 compiles the kernels: on one core the shipped
 * model's prefill settles after about four 4K-token prompts. The best of eight repetitions measures
 * the compiled engine, as a long-running server sees it; the report also gives our first prefill
 * in the fresh JVM (the untimed agreement pass), so the warm-up cost is stated next to it.
 */
public final class PeerBenchmark {
    static final String NOT_RUN_NO_NODE = "llama.cpp peer not run: node not found";

    private PeerBenchmark() {}

    /** Options of one run. */
    record Options(
            Path out,
            List<Integer> threads,
            int prompt,
            int longContext,
            int decode,
            int longDecode,
            int check,
            int reps,
            int batch) {}

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("--engine")) {
            Worker.main(Arrays.copyOfRange(args, 1, args.length));
            return;
        }
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            System.exit(2);
            return;
        }
        System.exit(run(o, System.out));
    }

    static Options parse(String[] args) {
        Path out = null;
        List<Integer> threads = List.of(Runtime.getRuntime().availableProcessors());
        int prompt = 4032;
        int longContext = 32768;
        int decode = 64;
        int longDecode = 32;
        int check = 16;
        int reps = 8;
        int batch = 512;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            switch (a) {
                case "--peers" -> {}
                case "--out" -> out = Path.of(value(args, ++i, a));
                case "--threads" ->
                    threads = Arrays.stream(value(args, ++i, a).split(","))
                            .map(s -> positive(a, s))
                            .toList();
                case "--prompt" -> prompt = positive(a, value(args, ++i, a));
                case "--long-context" -> longContext = Integer.parseInt(value(args, ++i, a));
                case "--decode" -> decode = positive(a, value(args, ++i, a));
                case "--long-decode" -> longDecode = positive(a, value(args, ++i, a));
                case "--check" -> check = positive(a, value(args, ++i, a));
                case "--reps" -> reps = positive(a, value(args, ++i, a));
                case "--batch" -> batch = positive(a, value(args, ++i, a));
                default -> throw usage("unknown option '" + a + "'");
            }
        }
        if (check > decode + 1) {
            throw usage("--check " + check + " exceeds the generated tokens (--decode + 1 = " + (decode + 1) + ")");
        }
        if (longContext != 0 && longContext < 1024) {
            throw usage("--long-context must be 0 (skip) or at least 1024, was " + longContext);
        }
        if (out == null) {
            out = Path.of(
                    "reports", "bench-" + LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")));
        }
        return new Options(out, threads, prompt, longContext, decode, longDecode, check, reps, batch);
    }

    static final String USAGE = "usage: bin/kvcache4j bench --peers [--out DIR] [--threads LIST] [--prompt N]"
            + " [--long-context N] [--decode N] [--long-decode N] [--check N] [--reps N] [--batch N]";

    private static IllegalArgumentException usage(String message) {
        return new IllegalArgumentException("bench --peers: " + message + "\n" + USAGE);
    }

    private static String value(String[] args, int i, String name) {
        if (i >= args.length) {
            throw usage(name + " needs a value");
        }
        return args[i];
    }

    private static int positive(String name, String s) {
        int v = Integer.parseInt(s.trim());
        if (v < 1) {
            throw usage(name + " must be >= 1, was " + s);
        }
        return v;
    }

    /** One measured engine configuration on one model. */
    record Measurement(
            String engine, double prefillTps, double decodeTps, double prefillWallTps, double decodeWallTps) {}

    /** One table row: a model and thread count, ours and each llama.cpp configuration. */
    record Row(
            String model,
            int threads,
            int promptTokens,
            int decodeTokens,
            Measurement ours,
            Map<String, Measurement> peers,
            Map<String, String> notes) {}

    /** Runs everything and prints the table; returns the exit status. */
    static int run(Options o, PrintStream out) throws Exception {
        Path home = home();
        Path dir = o.out().resolve("peers");
        Files.createDirectories(dir);
        StringBuilder md = new StringBuilder("# kvcache4j against llama.cpp\n\n");
        String node = which("node");
        if (node == null) {
            out.println(NOT_RUN_NO_NODE);
            md.append(NOT_RUN_NO_NODE).append("\n");
            Files.writeString(dir.resolve("peers.md"), md);
            return 0;
        }
        Path peerDir = home.resolve("benchmarks/peers/llama-cpp");
        String missing = ensureInstalled(peerDir, out);
        if (missing != null) {
            out.println("llama.cpp peer not run: " + missing);
            md.append("llama.cpp peer not run: ").append(missing).append("\n");
            Files.writeString(dir.resolve("peers.md"), md);
            return 0;
        }
        Path shipped = home.resolve("model/kvcache4j-niah.gguf");
        if (!Files.isRegularFile(shipped)) {
            throw new IOException("shipped model not found at " + shipped.toAbsolutePath());
        }
        String nodeVersion = capture(List.of(node, "--version"), null).trim();
        String cpu = cpuName();
        List<Row> rows = new ArrayList<>();
        List<String> log = new ArrayList<>();
        Map<String, Object> raw = new LinkedHashMap<>();

        // (a) The shipped model on a NIAH prompt: greedy agreement first, then speed.
        int[] prompt;
        int[] needleAnswer = new int[0];
        String answer = "4718265";
        try (GgufModel m = GgufModel.open(shipped)) {
            TextCodec codec = codec(Tokenizer.fromGguf(m));
            NiahPrompt p = NiahPrompt.build(
                    Haystack.builtIn(codec),
                    codec,
                    Needle.standard("violet lantern", answer),
                    o.prompt(),
                    0.5,
                    new SplittableRandom(1));
            prompt = p.all();
            needleAnswer = codec.encode(" " + answer);
        }
        Path shippedTokens = dir.resolve("shipped-prompt.tokens");
        writeTokens(shippedTokens, prompt);
        for (int t : o.threads()) {
            String label =
                    String.format(Locale.ROOT, "kvcache4j-niah.gguf (%.2fM params)", tensorElements(shipped) / 1e6);
            out.printf(Locale.ROOT, "peers: %s, %d prompt tokens, %d threads ...%n", label, prompt.length, t);
            Map<String, Object> ours = ours(shipped, shippedTokens, t, o.decode(), o.reps(), o.check(), o.batch(), dir);
            raw.put("shipped/ours/threads=" + t, ours);
            int[] oursCheck = ints(ours.get("check"));
            Path expect = dir.resolve("shipped-expected-t" + t + ".tokens");
            writeTokens(expect, oursCheck);
            Map<String, Measurement> peers = new LinkedHashMap<>();
            Map<String, String> notes = new LinkedHashMap<>();
            for (String fa : List.of("off", "on")) {
                Map<String, Object> r = llamaCpp(
                        node,
                        peerDir,
                        shipped,
                        shippedTokens,
                        t,
                        o.decode(),
                        o.reps(),
                        fa,
                        o.batch(),
                        o.check(),
                        expect,
                        dir);
                raw.put("shipped/llama.cpp FA " + fa + "/threads=" + t, r);
                String key = "llama.cpp FA " + fa;
                if (r.get("mismatch") instanceof Map<?, ?> mm) {
                    String note = String.format(
                            Locale.ROOT,
                            "MISMATCH: greedy tokens differ at generated token %s (kvcache4j %s, llama.cpp %s);"
                                    + " this pair was not timed",
                            mm.get("index"),
                            mm.get("expected"),
                            mm.get("actual"));
                    notes.put(key, note);
                    out.println("peers: " + key + ": " + note);
                } else {
                    notes.put(key, "first " + o.check() + " greedy tokens identical");
                    peers.put(key, measurement(key, r));
                }
            }
            boolean answered = containsAt(oursCheck, needleAnswer);
            log.add(String.format(
                    Locale.ROOT,
                    "shipped model, threads %d: kvcache4j's greedy answer %s the needle's value %s",
                    t,
                    answered ? "starts with" : "does not start with",
                    answer));
            String cold = coldPrefillLine(t, ours);
            if (cold != null) {
                log.add(cold);
            }
            rows.add(new Row(label, t, prompt.length, o.decode(), measurement("kvcache4j", ours), peers, notes));
        }

        // (b) A random-weight Llama at a long context.
        if (o.longContext() > 0) {
            Path tmp = Files.createTempDirectory("kvcache4j-peers");
            Path gguf = tmp.resolve("random-llama-d512-gqa8x2.gguf");
            int[] longPrompt;
            try {
                LlamaConfig shape = writeLongModel(gguf, shipped, o.longContext());
                try (GgufModel m = GgufModel.open(shipped)) {
                    TextCodec codec = codec(Tokenizer.fromGguf(m));
                    longPrompt = NiahPrompt.build(
                                    Haystack.builtIn(codec),
                                    codec,
                                    Needle.standard("violet lantern", answer),
                                    o.longContext() - o.longDecode(),
                                    0.5,
                                    new SplittableRandom(2))
                            .all();
                }
                Path longTokens = dir.resolve("long-prompt.tokens");
                writeTokens(longTokens, longPrompt);
                String label = String.format(
                        Locale.ROOT,
                        "random Llama %d layers, d %d, GQA %d/%d, F16 (%.1fM params)",
                        shape.layers(),
                        shape.dim(),
                        shape.heads(),
                        shape.kvHeads(),
                        tensorElements(gguf) / 1e6);
                for (int t : o.threads()) {
                    out.printf(
                            Locale.ROOT, "peers: %s, %d prompt tokens, %d threads ...%n", label, longPrompt.length, t);
                    Map<String, Object> ours = ours(gguf, longTokens, t, o.longDecode(), 1, 0, o.batch(), dir);
                    raw.put("long/ours/threads=" + t, ours);
                    int[] oursGen = ints(ours.get("generated"));
                    Map<String, Measurement> peers = new LinkedHashMap<>();
                    Map<String, String> notes = new LinkedHashMap<>();
                    for (String fa : List.of("off", "on")) {
                        Map<String, Object> r = llamaCpp(
                                node, peerDir, gguf, longTokens, t, o.longDecode(), 1, fa, o.batch(), 0, null, dir);
                        raw.put("long/llama.cpp FA " + fa + "/threads=" + t, r);
                        String key = "llama.cpp FA " + fa;
                        int[] theirs = ints(r.get("generated"));
                        int same = commonPrefix(oursGen, theirs);
                        int want = Math.min(o.check(), oursGen.length);
                        if (same >= want) {
                            peers.put(key, measurement(key, r));
                            notes.put(
                                    key,
                                    String.format(
                                            Locale.ROOT,
                                            "greedy tokens of the timed runs identical for the first %d of %d",
                                            same,
                                            oursGen.length));
                        } else {
                            String note = String.format(
                                    Locale.ROOT,
                                    "MISMATCH: greedy tokens of the timed runs differ at generated token %d"
                                            + " (kvcache4j %d, llama.cpp %s); timings not reported",
                                    same,
                                    oursGen[same],
                                    same < theirs.length ? String.valueOf(theirs[same]) : "none");
                            notes.put(key, note);
                            out.println("peers: " + key + ": " + note);
                        }
                    }
                    rows.add(new Row(
                            label, t, longPrompt.length, o.longDecode(), measurement("kvcache4j", ours), peers, notes));
                }
            } finally {
                Files.deleteIfExists(gguf);
                Files.deleteIfExists(tmp);
            }
        }

        String table = table(rows);
        String header = String.format(
                Locale.ROOT,
                "machine: %s, %d CPUs; %s; node %s; %s%n",
                cpu,
                Runtime.getRuntime().availableProcessors(),
                "Java " + Runtime.version(),
                nodeVersion,
                raw.values().stream()
                        .filter(v -> v instanceof Map<?, ?> mm && mm.containsKey("binding"))
                        .map(v -> ((Map<?, ?>) v).get("binding") + " (" + ((Map<?, ?>) v).get("llamaCpp") + ")")
                        .findFirst()
                        .orElse(""));
        out.println();
        out.println("== kvcache4j against llama.cpp: tokens/s, same GGUF, same prompt tokens, f16 KV, greedy ==");
        out.print(header);
        out.print(table);
        for (String l : log) {
            out.println(l);
        }
        out.println(METHOD);
        md.append(header).append("\n").append(table).append("\n");
        for (String l : log) {
            md.append(l).append("\n\n");
        }
        md.append(METHOD).append("\n");
        Files.writeString(dir.resolve("peers.md"), md);
        Files.writeString(dir.resolve("peers.json"), Json.write(raw) + "\n");
        out.println("peer results: " + dir.resolve("peers.md").toAbsolutePath());
        return 0;
    }

    /**
     * The report line for our engine's first prefill in its fresh JVM (the untimed agreement pass,
     * JIT compiling), or null when the worker did not run one.
     */
    static String coldPrefillLine(int threads, Map<String, Object> ours) {
        if (ours.get("coldPrefillMs") == null) {
            return null;
        }
        return String.format(
                Locale.ROOT,
                "shipped model, threads %d: kvcache4j's first prefill in its fresh JVM (JIT compiling): %s tokens/s"
                        + " (%.0f ms)",
                threads,
                num(dbl(ours.get("coldPrefillTokensPerSecond"))),
                dbl(ours.get("coldPrefillMs")));
    }

    static final String METHOD = String.join(
            "\n",
            "How it is measured: both engines get the same token ids (written by the Java side) and the same GGUF.",
            "prefill = prompt tokens / time to run the prompt in batches of the same size and pick the first token;",
            "decode = generated tokens / time of single-token steps (forward + greedy pick) right after the prompt.",
            "kvcache4j: wall clock around LlamaEngine.forward + argmax, full policy, f16 KV, in its own JVM.",
            "llama.cpp: one llama_decode per batch or token through node-llama-cpp's lowest-level calls"
                    + " (AddonContext initBatch/addToBatch/decodeBatch/sampleToken);",
            "  the tokens/s shown are llama.cpp's own llama_perf_context counters (binding overhead excluded),"
                    + " the binding's wall clock in parentheses; f16 K and V; FA = flash attention.",
            "Shipped model: best of --reps repetitions on each side after an untimed pass that checks greedy"
                    + " agreement first (a pair that disagrees is not timed); kvcache4j's JVM compiles its kernels"
                    + " during the first prompts, whose cost is the first-prefill line above;",
            "  long model: one timed repetition after a warm-up on the first two batches of the prompt and the same number of decode steps, agreement checked on the timed runs' tokens"
                    + " (a pair that disagrees is not reported).",
            "ratio = kvcache4j tokens/s / llama.cpp tokens/s (>1: kvcache4j faster).");

    static String table(List<Row> rows) {
        List<String> peerKeys = rows.stream()
                .flatMap(r -> r.notes().keySet().stream())
                .distinct()
                .toList();
        StringBuilder b = new StringBuilder("| model | threads | prompt + decode | phase | kvcache4j tok/s |");
        for (String k : peerKeys) {
            b.append(' ').append(k).append(" tok/s (wall) |");
        }
        for (String k : peerKeys) {
            b.append(" kvcache4j / ").append(k).append(" |");
        }
        b.append(" kvcache4j / faster llama.cpp |\n|---|---|---|---|---|");
        b.append("---|".repeat(2 * peerKeys.size() + 1)).append('\n');
        for (Row r : rows) {
            for (String phase : List.of("prefill", "decode")) {
                boolean pre = phase.equals("prefill");
                double ours = pre ? r.ours().prefillTps() : r.ours().decodeTps();
                b.append(String.format(
                        Locale.ROOT,
                        "| %s | %d | %d + %d | %s | %s |",
                        r.model(),
                        r.threads(),
                        r.promptTokens(),
                        r.decodeTokens(),
                        phase,
                        num(ours)));
                double fastest = 0;
                StringBuilder ratios = new StringBuilder();
                for (String k : peerKeys) {
                    Measurement m = r.peers().get(k);
                    if (m == null) {
                        b.append(" not timed |");
                        ratios.append(" n/a |");
                    } else {
                        double v = pre ? m.prefillTps() : m.decodeTps();
                        double w = pre ? m.prefillWallTps() : m.decodeWallTps();
                        b.append(String.format(Locale.ROOT, " %s (%s) |", num(v), num(w)));
                        ratios.append(' ').append(ratio(ours, v)).append(" |");
                        fastest = Math.max(fastest, v);
                    }
                }
                b.append(ratios).append(' ').append(ratio(ours, fastest)).append(" |\n");
            }
        }
        b.append('\n');
        for (Row r : rows) {
            for (var e : r.notes().entrySet()) {
                b.append(String.format(
                        Locale.ROOT, "- %s, threads %d, %s: %s%n", r.model(), r.threads(), e.getKey(), e.getValue()));
            }
        }
        return b.toString();
    }

    private static String num(double v) {
        if (!(v > 0)) {
            return "n/a";
        }
        return v >= 100 ? String.format(Locale.ROOT, "%.0f", v) : String.format(Locale.ROOT, "%.1f", v);
    }

    private static String ratio(double ours, double peer) {
        return ours > 0 && peer > 0 ? String.format(Locale.ROOT, "%.2f", ours / peer) : "n/a";
    }

    private static Measurement measurement(String engine, Map<String, Object> r) {
        if (engine.equals("kvcache4j")) {
            double p = dbl(r.get("prefillTokensPerSecond"));
            double d = dbl(r.get("decodeTokensPerSecond"));
            return new Measurement(engine, p, d, p, d);
        }
        return new Measurement(
                engine,
                dbl(r.get("prefillTokensPerSecondLlamaCpp")),
                dbl(r.get("decodeTokensPerSecondLlamaCpp")),
                dbl(r.get("prefillTokensPerSecondWall")),
                dbl(r.get("decodeTokensPerSecondWall")));
    }

    // ---------------------------------------------------------------- the two engines' processes

    private static Map<String, Object> ours(
            Path model, Path tokens, int threads, int decode, int reps, int check, int batch, Path dir)
            throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(pin(threads));
        cmd.addAll(List.of(
                java,
                "--add-modules=jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED",
                "-XX:+UseParallelGC",
                "-Xss4m",
                "-Xmx2g",
                "-XX:ActiveProcessorCount=" + threads,
                "-Djava.util.concurrent.ForkJoinPool.common.parallelism=" + threads,
                "-cp",
                System.getProperty("java.class.path"),
                PeerBenchmark.class.getName(),
                "--engine",
                "--model",
                model.toString(),
                "--tokens",
                tokens.toString(),
                "--decode",
                String.valueOf(decode),
                "--reps",
                String.valueOf(reps),
                "--check",
                String.valueOf(check),
                "--batch",
                String.valueOf(batch)));
        return Json.object(capture(cmd, dir.resolve("kvcache4j-t" + threads + ".log")));
    }

    private static Map<String, Object> llamaCpp(
            String node,
            Path peerDir,
            Path model,
            Path tokens,
            int threads,
            int decode,
            int reps,
            String flashAttention,
            int batch,
            int check,
            Path expect,
            Path dir)
            throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(pin(threads));
        cmd.addAll(List.of(
                node,
                peerDir.resolve("bench.mjs").toString(),
                "--model",
                model.toAbsolutePath().toString(),
                "--tokens",
                tokens.toAbsolutePath().toString(),
                "--threads",
                String.valueOf(threads),
                "--kv",
                "f16",
                "--decode",
                String.valueOf(decode),
                "--flash-attention",
                flashAttention,
                "--batch",
                String.valueOf(batch),
                "--reps",
                String.valueOf(reps)));
        if (check > 0) {
            cmd.addAll(List.of("--check", String.valueOf(check)));
        }
        if (expect != null) {
            cmd.addAll(List.of("--expect", expect.toAbsolutePath().toString()));
        }
        return Json.object(capture(cmd, dir.resolve("llama-cpp-fa-" + flashAttention + "-t" + threads + ".log")));
    }

    /** {@code taskset -c 0..T-1} when fewer threads than CPUs are asked for and taskset exists. */
    private static List<String> pin(int threads) {
        if (threads >= Runtime.getRuntime().availableProcessors()) {
            return List.of();
        }
        String taskset = which("taskset");
        return taskset == null ? List.of() : List.of(taskset, "-c", "0-" + (threads - 1));
    }

    /** Runs a command, returns its stdout; stderr goes to {@code log} (or is discarded); fails on non-zero exit. */
    static String capture(List<String> cmd, Path log) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("NODE_LLAMA_CPP_SKIP_DOWNLOAD", "true");
        pb.redirectError(log == null ? ProcessBuilder.Redirect.DISCARD : ProcessBuilder.Redirect.to(log.toFile()));
        Process p = pb.start();
        byte[] stdout = p.getInputStream().readAllBytes();
        int rc = p.waitFor();
        if (rc != 0) {
            String tail = "";
            if (log != null && Files.exists(log)) {
                List<String> lines = Files.readAllLines(log);
                tail = String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
            }
            throw new IOException("command failed with exit status " + rc + ": " + String.join(" ", cmd) + "\n" + tail);
        }
        return new String(stdout, StandardCharsets.UTF_8);
    }

    /** The executable {@code name} on the PATH, or null. */
    static String which(String name) {
        String path = System.getenv("PATH");
        if (path == null) {
            return null;
        }
        for (String d : path.split(File.pathSeparator)) {
            Path p = Path.of(d.isEmpty() ? "." : d, name);
            if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return null;
    }

    /** Installs the pinned node packages if they are missing; returns why the peer cannot run, or null. */
    private static String ensureInstalled(Path peerDir, PrintStream out) throws IOException, InterruptedException {
        if (!Files.isRegularFile(peerDir.resolve("bench.mjs"))) {
            return peerDir.resolve("bench.mjs") + " not found";
        }
        if (Files.isDirectory(peerDir.resolve("node_modules/node-llama-cpp"))
                && Files.isDirectory(peerDir.resolve("node_modules/@node-llama-cpp/linux-x64"))) {
            return null;
        }
        String npm = which("npm");
        if (npm == null) {
            return "npm not found (needed once to install " + peerDir.resolve("package-lock.json") + ")";
        }
        // npm install with the committed lock file, not npm ci: the lock lacks node-llama-cpp's optional
        // prebuilt packages for other platforms that were never published for this version, which npm ci
        // rejects. --omit=optional skips the GPU builds; the CPU one is a direct dependency.
        out.println("peers: installing node-llama-cpp into " + peerDir + " (prebuilt CPU binary, no build)");
        ProcessBuilder pb = new ProcessBuilder(npm, "install", "--omit=optional", "--no-audit", "--no-fund")
                .directory(peerDir.toFile())
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.INHERIT);
        pb.environment().put("NODE_LLAMA_CPP_SKIP_DOWNLOAD", "true");
        int rc = pb.start().waitFor();
        return rc == 0 ? null : "npm install failed in " + peerDir + " (exit status " + rc + ")";
    }

    /** The project root: {@code -Dkvcache4j.home}, else the folder two levels above the benchmarks jar, else ".". */
    static Path home() {
        String h = System.getProperty("kvcache4j.home");
        if (h != null) {
            return Path.of(h);
        }
        try {
            Path jar = Path.of(PeerBenchmark.class
                    .getProtectionDomain()
                    .getCodeSource()
                    .getLocation()
                    .toURI());
            Path root = jar.getParent() == null ? null : jar.getParent().getParent();
            root = root == null ? null : root.getParent();
            if (root != null && Files.isDirectory(root.resolve("benchmarks/peers"))) {
                return root;
            }
        } catch (URISyntaxException | RuntimeException e) {
            // fall through
        }
        return Path.of(".");
    }

    private static String cpuName() {
        try {
            for (String l : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (l.startsWith("model name")) {
                    return l.substring(l.indexOf(':') + 1).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            // not Linux
        }
        return System.getProperty("os.arch");
    }

    // ---------------------------------------------------------------- models and prompts

    /**
     * Writes a random-weight Llama GGUF for a {@code context}-token context with the shipped model's
     * tokenizer (llama.cpp will not load a GGUF without one), and returns its shape.
     */
    static LlamaConfig writeLongModel(Path path, Path tokenizerSource, int context) throws IOException {
        Path weights = path.resolveSibling(path.getFileName() + ".weights");
        try (GgufModel tok = GgufModel.open(tokenizerSource)) {
            int vocab = tok.getArray("tokenizer.ggml.tokens").size();
            LlamaConfig shape = new LlamaConfig(vocab, 512, 4, 8, 2, 64, 1408, 1e-5f, 500000f, 1f, context);
            RandomLlamaGguf.write(weights, shape, GgmlType.F16, 11);
            GgufWriter w = new GgufWriter();
            try (GgufModel src = GgufModel.open(weights)) {
                for (Map.Entry<String, GgufValue> e : src.metadata().entrySet()) {
                    w.put(e.getKey(), e.getValue());
                }
                for (Map.Entry<String, GgufValue> e : tok.metadata().entrySet()) {
                    if (e.getKey().startsWith("tokenizer.")) {
                        w.put(e.getKey(), e.getValue());
                    }
                }
                for (GgufTensorInfo t : src.tensors()) {
                    byte[] data = src.tensorData(t.name()).toArray(ValueLayout.JAVA_BYTE);
                    w.addTensorBytes(t.name(), t.type(), t.ne(), data);
                }
            }
            w.write(path);
            return shape;
        } finally {
            Files.deleteIfExists(weights);
        }
    }

    /** Elements in all tensors of a GGUF file (its parameter count). */
    static long tensorElements(Path gguf) throws IOException {
        try (GgufModel m = GgufModel.open(gguf)) {
            return m.tensors().stream().mapToLong(GgufTensorInfo::elementCount).sum();
        }
    }

    static TextCodec codec(Tokenizer tokenizer) {
        return new TextCodec() {
            @Override
            public int[] encode(String text) {
                return tokenizer.encode(text, false, false);
            }

            @Override
            public String decode(int[] ids, int from, int to) {
                return tokenizer.decode(Arrays.copyOfRange(ids, from, to));
            }

            @Override
            public int bosId() {
                return tokenizer.bosId();
            }

            @Override
            public int eosId() {
                return tokenizer.eosId();
            }
        };
    }

    static void writeTokens(Path file, int[] tokens) throws IOException {
        Files.writeString(
                file, Arrays.stream(tokens).mapToObj(Integer::toString).collect(Collectors.joining(" ")) + "\n");
    }

    static int[] readTokens(Path file) throws IOException {
        String s = Files.readString(file).trim();
        return s.isEmpty()
                ? new int[0]
                : Arrays.stream(s.split("\\s+")).mapToInt(Integer::parseInt).toArray();
    }

    static int commonPrefix(int[] a, int[] b) {
        int n = Math.min(a.length, b.length);
        int i = 0;
        while (i < n && a[i] == b[i]) {
            i++;
        }
        return i;
    }

    private static boolean containsAt(int[] haystack, int[] needle) {
        return needle.length > 0
                && haystack.length >= needle.length
                && Arrays.equals(Arrays.copyOf(haystack, needle.length), needle);
    }

    private static int[] ints(Object list) {
        if (!(list instanceof List<?> l)) {
            return new int[0];
        }
        return l.stream().mapToInt(x -> (int) dbl(x)).toArray();
    }

    private static double dbl(Object o) {
        return o instanceof Number n ? n.doubleValue() : Double.NaN;
    }

    // ---------------------------------------------------------------- our engine, in its own JVM

    /**
     * {@code PeerBenchmark --engine --model F --tokens F --decode N --reps R --check C --batch B}: the
     * reference engine's side, printing one JSON object. An untimed pass (the prompt and {@code C} greedy
     * tokens, or the first two batches of the prompt and {@code N} steps when {@code C = 0}) warms the JIT up; then
     * {@code R} timed repetitions on fresh caches, best kept.
     */
    static final class Worker {
        private Worker() {}

        static void main(String[] args) throws IOException {
            Path model = null;
            Path tokens = null;
            int decode = 32;
            int reps = 1;
            int check = 0;
            int batch = 512;
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--model" -> model = Path.of(args[++i]);
                    case "--tokens" -> tokens = Path.of(args[++i]);
                    case "--decode" -> decode = Integer.parseInt(args[++i]);
                    case "--reps" -> reps = Integer.parseInt(args[++i]);
                    case "--check" -> check = Integer.parseInt(args[++i]);
                    case "--batch" -> batch = Integer.parseInt(args[++i]);
                    default -> throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            int[] prompt = readTokens(tokens);
            try (GgufLlama m = GgufLlama.open(model)) {
                LlamaEngine engine = new LlamaEngine(m, batch);
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("engine", "kvcache4j");
                r.put("threads", Runtime.getRuntime().availableProcessors());
                r.put("commonPoolParallelism", java.util.concurrent.ForkJoinPool.getCommonPoolParallelism());
                r.put("promptTokens", prompt.length);
                r.put("decodeTokens", decode);
                r.put("batch", batch);
                if (check > 0) {
                    long[] cold = new long[2];
                    r.put("check", toList(generate(engine, m.config(), prompt, check - 1, cold)));
                    r.put("coldPrefillMs", cold[0] / 1e6);
                    r.put("coldPrefillTokensPerSecond", prompt.length / (cold[0] / 1e9));
                } else {
                    // Two batches of the prompt and as many steps as the timed run: every decode kernel
                    // (32-token pages score two blocks per pass only once a page is full) is compiled
                    // before timing, as in an engine that has decoded a while.
                    generate(
                            engine,
                            m.config(),
                            Arrays.copyOf(prompt, Math.min(prompt.length, 2 * batch)),
                            decode,
                            null);
                }
                long bestPrefill = Long.MAX_VALUE;
                long bestDecode = Long.MAX_VALUE;
                List<Object> repetitions = new ArrayList<>();
                int[] generated = null;
                for (int rep = 0; rep < reps; rep++) {
                    long[] times = new long[2];
                    int[] g = generate(engine, m.config(), prompt, decode, times);
                    if (generated == null) {
                        generated = g;
                    }
                    bestPrefill = Math.min(bestPrefill, times[0]);
                    bestDecode = Math.min(bestDecode, times[1]);
                    Map<String, Object> one = new LinkedHashMap<>();
                    one.put("prefillMs", times[0] / 1e6);
                    one.put("decodeMs", times[1] / 1e6);
                    repetitions.add(one);
                }
                r.put("prefillTokensPerSecond", prompt.length / (bestPrefill / 1e9));
                r.put("decodeTokensPerSecond", decode / (bestDecode / 1e9));
                r.put("repetitions", repetitions);
                r.put("generated", toList(generated));
                System.out.println(Json.write(r));
            }
        }

        /**
         * Prompt, then {@code steps} single-token steps, greedy; returns the {@code steps + 1} generated
         * tokens; {@code times} (if not null) receives prefill and decode nanoseconds.
         */
        static int[] generate(LlamaEngine engine, LlamaConfig c, int[] prompt, int steps, long[] times) {
            int[] out = new int[steps + 1];
            try (KvCache cache = KvCache.builder(c.cacheShape())
                    .dtype(KvDType.F16)
                    .attentionPool(io.kvcache4j.eval.llama.Parallel.attentionPool())
                    .build()) {
                long t0 = System.nanoTime();
                float[] logits = engine.forward(prompt, 0, prompt.length, cache);
                cache.endPrefill();
                out[0] = LlamaEngine.argmax(logits);
                long t1 = System.nanoTime();
                for (int i = 0; i < steps; i++) {
                    logits = engine.forward(out, i, 1, cache);
                    out[i + 1] = LlamaEngine.argmax(logits);
                }
                long t2 = System.nanoTime();
                if (times != null) {
                    times[0] = t1 - t0;
                    times[1] = t2 - t1;
                }
            }
            return out;
        }

        private static List<Integer> toList(int[] a) {
            return Arrays.stream(a).boxed().toList();
        }
    }

    // ---------------------------------------------------------------- minimal JSON

    /** Just enough JSON for the two engines' one-line reports: objects, arrays, strings, numbers, literals. */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) {
            this.s = s;
        }

        /** Parses the last line of {@code text} that starts with '{'. */
        @SuppressWarnings("unchecked")
        static Map<String, Object> object(String text) {
            String line = text.lines()
                    .filter(l -> l.startsWith("{"))
                    .reduce((a, b) -> b)
                    .orElseThrow(() -> new IllegalArgumentException("no JSON object in output:\n" + text));
            Json j = new Json(line);
            Object v = j.value();
            if (!(v instanceof Map)) {
                throw new IllegalArgumentException("not a JSON object: " + line);
            }
            return (Map<String, Object>) v;
        }

        private Object value() {
            ws();
            char c = s.charAt(i);
            switch (c) {
                case '{' -> {
                    i++;
                    Map<String, Object> m = new LinkedHashMap<>();
                    ws();
                    if (s.charAt(i) == '}') {
                        i++;
                        return m;
                    }
                    while (true) {
                        ws();
                        String k = string();
                        ws();
                        expect(':');
                        m.put(k, value());
                        ws();
                        if (s.charAt(i) == ',') {
                            i++;
                        } else {
                            expect('}');
                            return m;
                        }
                    }
                }
                case '[' -> {
                    i++;
                    List<Object> l = new ArrayList<>();
                    ws();
                    if (s.charAt(i) == ']') {
                        i++;
                        return l;
                    }
                    while (true) {
                        l.add(value());
                        ws();
                        if (s.charAt(i) == ',') {
                            i++;
                        } else {
                            expect(']');
                            return l;
                        }
                    }
                }
                case '"' -> {
                    return string();
                }
                default -> {
                    for (String lit : List.of("true", "false", "null")) {
                        if (s.startsWith(lit, i)) {
                            i += lit.length();
                            return lit.equals("null") ? null : Boolean.valueOf(lit);
                        }
                    }
                    int start = i;
                    while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) {
                        i++;
                    }
                    return Double.parseDouble(s.substring(start, i));
                }
            }
        }

        private String string() {
            expect('"');
            StringBuilder b = new StringBuilder();
            while (true) {
                char c = s.charAt(i++);
                if (c == '"') {
                    return b.toString();
                }
                if (c == '\\') {
                    char e = s.charAt(i++);
                    switch (e) {
                        case 'n' -> b.append('\n');
                        case 't' -> b.append('\t');
                        case 'r' -> b.append('\r');
                        case 'b' -> b.append('\b');
                        case 'f' -> b.append('\f');
                        case 'u' -> {
                            b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                            i += 4;
                        }
                        default -> b.append(e);
                    }
                } else {
                    b.append(c);
                }
            }
        }

        private void ws() {
            while (i < s.length() && Character.isWhitespace(s.charAt(i))) {
                i++;
            }
        }

        private void expect(char c) {
            if (i >= s.length() || s.charAt(i) != c) {
                throw new IllegalArgumentException("JSON: expected '" + c + "' at " + i + " in " + s);
            }
            i++;
        }

        static String write(Object v) {
            StringBuilder b = new StringBuilder();
            write(b, v);
            return b.toString();
        }

        private static void write(StringBuilder b, Object v) {
            if (v == null) {
                b.append("null");
            } else if (v instanceof Map<?, ?> m) {
                b.append('{');
                boolean first = true;
                for (var e : m.entrySet()) {
                    if (!first) {
                        b.append(',');
                    }
                    first = false;
                    write(b, String.valueOf(e.getKey()));
                    b.append(':');
                    write(b, e.getValue());
                }
                b.append('}');
            } else if (v instanceof List<?> l) {
                b.append('[');
                for (int k = 0; k < l.size(); k++) {
                    if (k > 0) {
                        b.append(',');
                    }
                    write(b, l.get(k));
                }
                b.append(']');
            } else if (v instanceof Double d) {
                b.append(
                        Double.isFinite(d)
                                ? (d == Math.rint(d) && Math.abs(d) < 1e15
                                        ? String.valueOf(d.longValue())
                                        : d.toString())
                                : "null");
            } else if (v instanceof Number || v instanceof Boolean) {
                b.append(v);
            } else {
                b.append('"');
                for (char c : v.toString().toCharArray()) {
                    switch (c) {
                        case '"' -> b.append("\\\"");
                        case '\\' -> b.append("\\\\");
                        case '\n' -> b.append("\\n");
                        case '\r' -> b.append("\\r");
                        case '\t' -> b.append("\\t");
                        default -> {
                            if (c < 0x20) {
                                b.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                            } else {
                                b.append(c);
                            }
                        }
                    }
                }
                b.append('"');
            }
        }
    }
}
