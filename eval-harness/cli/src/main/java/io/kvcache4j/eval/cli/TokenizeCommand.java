package io.kvcache4j.eval.cli;

import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import io.kvcache4j.eval.tokenizer.VocabTestFile;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code tokenize --model FILE.gguf [--cases FILE.inp] [--add-special] [--parse-special]}: prints
 * one line of token ids per input in llama.cpp's {@code .out} format (a space before each id). With
 * {@code --cases} the inputs are the cases of a llama.cpp vocab test file; without, each line of
 * standard input is one input. By default, like llama.cpp's test-tokenizer-0, no BOS/EOS is added
 * and control-token text is not parsed as tokens.
 */
@Command(
        name = "tokenize",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        usageHelpWidth = 100,
        sortOptions = false,
        sortSynopsis = false,
        description = "Token ids of text, one line per input in llama.cpp's .out format (inputs: the lines of"
                + " standard input, or the cases of a llama.cpp .inp file).")
final class TokenizeCommand implements Callable<Integer> {
    private final PrintStream out;
    private final Supplier<InputStream> stdin;

    TokenizeCommand(PrintStream out, Supplier<InputStream> stdin) {
        this.out = out;
        this.stdin = stdin;
    }

    @Option(names = "--model", paramLabel = "FILE.gguf", required = true, description = "GGUF file with a vocabulary.")
    Path model;

    @Option(names = "--cases", paramLabel = "FILE.inp", description = "llama.cpp vocab test inputs.")
    Path cases;

    @Option(names = "--add-special", description = "Add BOS/EOS as the vocabulary asks.")
    boolean addSpecial;

    @Option(names = "--parse-special", description = "Match control-token text as tokens.")
    boolean parseSpecial;

    @Override
    public Integer call() throws Exception {
        ModelFiles.readable("--model", model);
        if (cases != null) {
            ModelFiles.readable("--cases", cases);
        }
        Tokenizer tokenizer;
        try (GgufModel m = GgufModel.open(model)) {
            tokenizer = Tokenizer.fromGguf(m);
        }
        if (cases != null) {
            List<String> inputs = VocabTestFile.readInputs(cases);
            for (String input : inputs) {
                out.print(VocabTestFile.format(tokenizer.encode(input, addSpecial, parseSpecial)) + "\n");
            }
        } else {
            BufferedReader r = new BufferedReader(new InputStreamReader(stdin.get(), StandardCharsets.UTF_8));
            for (String line; (line = r.readLine()) != null; ) {
                out.print(VocabTestFile.format(tokenizer.encode(line, addSpecial, parseSpecial)) + "\n");
            }
        }
        out.flush();
        return Main.EXIT_OK;
    }
}
