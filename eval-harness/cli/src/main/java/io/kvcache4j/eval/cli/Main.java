package io.kvcache4j.eval.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.function.Supplier;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.IVersionProvider;
import picocli.CommandLine.MissingParameterException;
import picocli.CommandLine.Model.ArgSpec;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.OverwrittenOptionException;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.TypeConversionException;
import picocli.CommandLine.UnmatchedArgumentException;

/**
 * Entry point of {@code bin/kvcache4j}: {@code niah}, {@code generate}, {@code tokenize}, {@code
 * inspect} ({@code bench} is run by the script from the benchmarks jar).
 *
 * <p>Every option is typed and checked before any work. Exit status: 0 on success; 2 for a command
 * line that cannot run (a bad option value, a missing or unknown option, options that do not go
 * together, an unwritable {@code --out}), with one line {@code kvcache4j <command>: <what is
 * wrong>} naming the option, the value and what is allowed; 1 for a failure while working (an
 * unreadable or corrupt model, a full disk), also one line. {@code --help} after a command prints
 * its usage, {@code --version} the version.
 */
@Command(
        name = "kvcache4j",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        usageHelpWidth = 100,
        synopsisSubcommandLabel = "COMMAND",
        description = "A pluggable KV cache for JVM inference engines: evaluation on real models.",
        footer = {
            "  bench     JMH suite and its derived table (--quick, --out DIR, --include REGEX),",
            "            run from the benchmarks jar by bin/kvcache4j",
            "",
            "bin/kvcache4j COMMAND --help shows a command's options. Exit status: 0 done, 1 failed while",
            "working, 2 a command line that cannot run (one line names the option, the value and what is allowed)."
        })
public final class Main {
    static final int EXIT_OK = 0;
    static final int EXIT_FAILURE = 1;
    static final int EXIT_USAGE = 2;

    private Main() {}

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err, () -> System.in));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        return run(args, out, err, () -> System.in);
    }

    /** Runs one command line; returns the exit status. */
    static int run(String[] args, PrintStream out, PrintStream err, Supplier<InputStream> stdin) {
        CommandLine cli = commandLine(out, err, stdin);
        if (args.length == 0) {
            cli.usage(out);
            return EXIT_USAGE;
        }
        if (args[0].equals("bench")) {
            err.println("kvcache4j: bench runs from the benchmarks jar; run it as bin/kvcache4j bench");
            return EXIT_USAGE;
        }
        try {
            int status = cli.execute(args);
            out.flush();
            return status;
        } catch (OutOfMemoryError e) {
            err.println(prefix(cli, args) + outOfMemory());
            return EXIT_FAILURE;
        } catch (StackOverflowError e) {
            err.println(prefix(cli, args) + "the input nests too deeply to process");
            return EXIT_FAILURE;
        }
    }

    /** The names of the commands, in the order of the usage. */
    static Map<String, CommandLine> commands() {
        return new LinkedHashMap<>(
                commandLine(System.out, System.err, () -> System.in).getSubcommands());
    }

    static CommandLine commandLine(PrintStream out, PrintStream err, Supplier<InputStream> stdin) {
        CommandLine cli = new CommandLine(new Main())
                .addSubcommand(new NiahCommand(out, err))
                .addSubcommand(new GenerateCommand(out, err))
                .addSubcommand(new TokenizeCommand(out, stdin))
                .addSubcommand(new InspectCommand(out));
        // '@file' arguments stay text: a prompt may start with '@'.
        cli.setExpandAtFiles(false);
        cli.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
        cli.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
        cli.setParameterExceptionHandler((ex, args) -> {
            err.println(commandName(ex.getCommandLine()) + ": " + oneLine(usageMessage(ex)));
            return EXIT_USAGE;
        });
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            String name = commandName(commandLine);
            if (ex instanceof BadOption b) {
                err.println(name + ": " + oneLine(b.getMessage()));
                return EXIT_USAGE;
            }
            err.println(name + ": " + oneLine(describe(ex)));
            return EXIT_FAILURE;
        });
        return cli;
    }

    private static String commandName(CommandLine c) {
        return c.getParent() == null ? "kvcache4j" : "kvcache4j " + c.getCommandName();
    }

    private static String prefix(CommandLine cli, String[] args) {
        String name = args.length > 0 && cli.getSubcommands().containsKey(args[0]) ? " " + args[0] : "";
        return "kvcache4j" + name + ": ";
    }

    /** A usage error in words: the option, the value and what is allowed. */
    static String usageMessage(ParameterException ex) {
        CommandSpec spec = ex.getCommandLine().getCommandSpec();
        ArgSpec arg = ex.getArgSpec();
        if (ex.getCause() instanceof TypeConversionException t && arg instanceof OptionSpec o) {
            return o.longestName() + " " + ex.getValue() + ": " + t.getMessage();
        }
        List<String> unmatched = ex instanceof UnmatchedArgumentException u
                ? u.getUnmatched()
                : ex.getCommandLine().getUnmatchedArguments();
        if ((ex instanceof UnmatchedArgumentException || ex instanceof MissingParameterException)
                && !unmatched.isEmpty()) {
            // An unknown word first: a missing required option is often a misspelt one.
            String word = unmatched.get(0);
            if (ex.getCommandLine().getParent() == null) {
                List<String> commands = new ArrayList<>(spec.subcommands().keySet());
                commands.add("bench");
                return (word.startsWith("-") ? "unknown option '" : "unknown command '") + word + "'; allowed: "
                        + String.join(", ", commands) + " (or --help, --version)";
            }
            return (word.startsWith("-") ? "unknown option '" : "unexpected argument '") + word + "'; allowed options: "
                    + String.join(", ", optionNames(spec));
        }
        if (ex instanceof MissingParameterException m) {
            List<String> missing = new ArrayList<>();
            for (ArgSpec a : m.getMissing()) {
                missing.add(a instanceof OptionSpec o ? o.longestName() + " " + o.paramLabel() : a.paramLabel());
            }
            if (ex.getMessage().startsWith("Missing required option")) {
                return String.join(" and ", missing) + (missing.size() == 1 ? " is" : " are") + " required";
            }
            return String.join(", ", missing) + ": a value is needed";
        }
        if (ex instanceof OverwrittenOptionException w && w.getOverwritten() instanceof OptionSpec o) {
            return o.longestName() + " is given more than once; give it once";
        }
        return ex.getMessage();
    }

    private static List<String> optionNames(CommandSpec spec) {
        List<String> options = new ArrayList<>();
        for (OptionSpec o : spec.options()) {
            options.add(o.longestName());
        }
        return options;
    }

    /** A failure in words: the message of the error, without exception names or stack traces. */
    static String describe(Throwable e) {
        if (e instanceof ExecutionException || e instanceof UncheckedIOException) {
            return e.getCause() != null ? describe(e.getCause()) : "failed";
        }
        if (e instanceof IOException io) {
            return ModelFiles.describe(io);
        }
        if (e instanceof OutOfMemoryError) {
            return outOfMemory();
        }
        if (e instanceof NullPointerException || e instanceof ClassCastException || e.getMessage() == null) {
            return "internal error" + (e.getCause() != null ? ": " + describe(e.getCause()) : "");
        }
        return e.getMessage();
    }

    private static String outOfMemory() {
        return "out of memory: this JVM may use " + (Runtime.getRuntime().maxMemory() >> 20)
                + " MiB of heap; use a smaller model, fewer cells or a larger -Xmx in KVCACHE4J_JAVA_OPTS";
    }

    /** Folds a message onto one line. */
    static String oneLine(String s) {
        return s == null ? "failed" : s.strip().replaceAll("\\s*\\R\\s*", "; ");
    }

    /** The project version, from {@code version.properties} (filtered by Maven at build time). */
    static final class Version implements IVersionProvider {
        @Override
        public String[] getVersion() {
            Properties p = new Properties();
            try (InputStream in = Main.class.getResourceAsStream("version.properties")) {
                if (in != null) {
                    p.load(in);
                }
            } catch (IOException e) {
                // No version file: the version is unknown, which is still an answer.
            }
            return new String[] {
                "kvcache4j " + p.getProperty("version", "(unknown version)"),
                "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.vm.name") + ")"
            };
        }
    }
}
