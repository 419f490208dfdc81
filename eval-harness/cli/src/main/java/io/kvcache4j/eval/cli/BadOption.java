package io.kvcache4j.eval.cli;

/**
 * A command line that cannot be run as given, found after parsing (a missing file, options that do
 * not go together, a budget too small for a prompt length). The message is one line that names the
 * option, the value and what is allowed; the command line prints {@code kvcache4j <command>:
 * <message>} and exits with status 2.
 */
final class BadOption extends RuntimeException {
    private final String option;

    BadOption(String option, String message) {
        super(message);
        this.option = option;
    }

    /** The option at fault, e.g. {@code --out}, or null when several are. */
    String option() {
        return option;
    }
}
