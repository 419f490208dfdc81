package io.kvcache4j.eval.cli;

import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.Map;

/** Entry point of {@code bin/kvcache4j}: dispatches to a subcommand. */
public final class Main {
    private Main() {}

    static Map<String, Command> commands() {
        Map<String, Command> m = new LinkedHashMap<>();
        for (Command c :
                new Command[] {new NiahCommand(), new GenerateCommand(), new TokenizeCommand(), new InspectCommand()}) {
            m.put(c.name(), c);
        }
        return m;
    }

    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        Map<String, Command> commands = commands();
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h")) {
            usage(commands, out);
            return args.length == 0 ? 2 : 0;
        }
        Command c = commands.get(args[0]);
        if (c == null) {
            err.println("kvcache4j: unknown command '" + args[0] + "'");
            usage(commands, err);
            return 2;
        }
        String[] rest = java.util.Arrays.copyOfRange(args, 1, args.length);
        try {
            return c.run(rest, out);
        } catch (UsageException e) {
            err.println("kvcache4j " + c.name() + ": " + e.getMessage());
            return 2;
        } catch (IllegalArgumentException | IllegalStateException | java.io.IOException e) {
            // Bad files and impossible settings found while working: one line, the message only.
            err.println("kvcache4j " + c.name() + ": " + oneLine(e.getMessage()));
            return 1;
        } catch (OutOfMemoryError e) {
            err.println("kvcache4j " + c.name() + ": out of memory (" + oneLine(e.getMessage())
                    + "); use a smaller model, fewer cells or a larger -Xmx in KVCACHE4J_JAVA_OPTS");
            return 1;
        } catch (Exception e) {
            err.println("kvcache4j " + c.name() + ": " + oneLine(String.valueOf(e.getMessage())));
            return 1;
        }
    }

    private static String oneLine(String message) {
        return message == null
                ? "failed"
                : message.replaceAll("\\s*\\R\\s*", " ").trim();
    }

    private static void usage(Map<String, Command> commands, PrintStream out) {
        out.println("usage: bin/kvcache4j <command> [options]");
        out.println("  bench      run the JMH suite (--quick, --out DIR)");
        for (Command c : commands.values()) {
            out.printf("  %-10s %s%n", c.name(), c.summary());
        }
    }
}
