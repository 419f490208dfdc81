package io.kvcache4j.eval.cli;

import java.io.PrintStream;

/** One subcommand of {@code bin/kvcache4j}. */
interface Command {
    /** The word that selects it, e.g. {@code tokenize}. */
    String name();

    /** One line for the usage summary. */
    String summary();

    /**
     * Runs with the arguments after the subcommand word. Returns the process exit status. Usage
     * errors throw {@link UsageException}.
     */
    int run(String[] args, PrintStream out) throws Exception;
}
