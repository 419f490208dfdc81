package io.kvcache4j.eval.cli;

import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.gguf.GgufTensorInfo;
import io.kvcache4j.eval.gguf.GgufValue;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code inspect --model FILE [--elements N]}: prints a GGUF file's header, its metadata (arrays
 * abbreviated to their first N elements, default 8) and its tensor table.
 */
@Command(
        name = "inspect",
        mixinStandardHelpOptions = true,
        versionProvider = Main.Version.class,
        usageHelpWidth = 100,
        sortOptions = false,
        sortSynopsis = false,
        description = "Header, metadata and tensor table of a GGUF file.")
final class InspectCommand implements Callable<Integer> {
    /** Most array elements shown per metadata value. */
    static final int MAX_ELEMENTS = 1_000_000;

    private final PrintStream out;

    InspectCommand(PrintStream out) {
        this.out = out;
    }

    @Option(names = "--model", paramLabel = "FILE", required = true, description = "GGUF file.")
    Path model;

    @Option(
            names = "--elements",
            paramLabel = "N",
            defaultValue = "8",
            converter = Converters.Elements.class,
            description = "Array elements shown per metadata value, in [0, " + MAX_ELEMENTS
                    + "] (default: ${DEFAULT-VALUE}).")
    int elements;

    @Override
    public Integer call() throws Exception {
        Path path = ModelFiles.readable("--model", model);
        try (GgufModel m = GgufModel.open(path)) {
            out.printf(
                    "%s: GGUF v%d, %d bytes, %d metadata keys, %d tensors, alignment %d, data at %d%n",
                    path,
                    m.version(),
                    m.fileSize(),
                    m.metadata().size(),
                    m.tensors().size(),
                    m.alignment(),
                    m.dataSectionOffset());
            out.println("metadata:");
            for (Map.Entry<String, GgufValue> e : m.metadata().entrySet()) {
                out.printf(
                        "  %s: %s = %s%n",
                        e.getKey(), e.getValue().type(), e.getValue().display(elements));
            }
            out.println("tensors:");
            int nameWidth = 4;
            for (GgufTensorInfo t : m.tensors()) {
                nameWidth = Math.max(nameWidth, t.name().length());
            }
            long total = 0;
            for (GgufTensorInfo t : m.tensors()) {
                out.printf(
                        "  %-" + nameWidth + "s  %-7s %-26s offset %12d  %12d bytes%n",
                        t.name(),
                        t.type(),
                        Arrays.toString(t.ne()),
                        t.fileOffset(),
                        t.byteSize());
                total += t.byteSize();
            }
            out.printf("  %d tensors, %d bytes of tensor data%n", m.tensors().size(), total);
        }
        out.flush();
        return Main.EXIT_OK;
    }
}
