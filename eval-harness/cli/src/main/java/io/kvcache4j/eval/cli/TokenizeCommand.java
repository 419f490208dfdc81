package io.kvcache4j.eval.cli;

import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.tokenizer.Tokenizer;
import io.kvcache4j.eval.tokenizer.VocabTestFile;
import java.io.BufferedReader;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.function.Supplier;

/**
 * {@code tokenize --model FILE.gguf [--cases FILE.inp] [--add-special] [--parse-special]}: prints
 * one line of token ids per input in llama.cpp's {@code .out} format (a space before each id). With
 * {@code --cases} the inputs are the cases of a llama.cpp vocab test file; without, each line of
 * standard input is one input. By default, like llama.cpp's test-tokenizer-0, no BOS/EOS is added
 * and control-token text is not parsed as tokens.
 */
final class TokenizeCommand implements Command {
    private final Supplier<InputStream> stdin;

    TokenizeCommand() {
        this(() -> System.in);
    }

    TokenizeCommand(Supplier<InputStream> stdin) {
        this.stdin = stdin;
    }

    @Override
    public String name() {
        return "tokenize";
    }

    @Override
    public String summary() {
        return "token ids of text (--model FILE.gguf [--cases FILE.inp] [--add-special] [--parse-special])";
    }

    @Override
    public int run(String[] args, PrintStream out) throws Exception {
        Args a = new Args(args, List.of("--model", "--cases"), List.of("--add-special", "--parse-special"));
        String model = a.get("--model");
        if (model == null) {
            throw new UsageException("--model FILE.gguf is required");
        }
        Path modelPath = Path.of(model);
        if (!Files.isRegularFile(modelPath)) {
            throw new UsageException("--model " + model + ": no such file");
        }
        boolean addSpecial = a.has("--add-special");
        boolean parseSpecial = a.has("--parse-special");
        Tokenizer tokenizer;
        try (GgufModel m = GgufModel.open(modelPath)) {
            tokenizer = Tokenizer.fromGguf(m);
        }
        String cases = a.get("--cases");
        if (cases != null) {
            Path casesPath = Path.of(cases);
            if (!Files.isRegularFile(casesPath)) {
                throw new UsageException("--cases " + cases + ": no such file");
            }
            for (String input : VocabTestFile.readInputs(casesPath)) {
                out.print(VocabTestFile.format(tokenizer.encode(input, addSpecial, parseSpecial)) + "\n");
            }
        } else {
            BufferedReader r = new BufferedReader(new InputStreamReader(stdin.get(), StandardCharsets.UTF_8));
            for (String line; (line = r.readLine()) != null; ) {
                out.print(VocabTestFile.format(tokenizer.encode(line, addSpecial, parseSpecial)) + "\n");
            }
        }
        out.flush();
        return 0;
    }
}
