package io.kvcache4j.eval.cli;

import io.kvcache4j.eval.gguf.GgufModel;
import io.kvcache4j.eval.gguf.GgufTensorInfo;
import io.kvcache4j.eval.gguf.GgufValue;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * {@code inspect --model FILE [--elements N]}: prints a GGUF file's header, its metadata (arrays
 * abbreviated to their first N elements, default 8) and its tensor table.
 */
final class InspectCommand implements Command {
    @Override
    public String name() {
        return "inspect";
    }

    @Override
    public String summary() {
        return "metadata and tensor table of a GGUF file (--model FILE [--elements N])";
    }

    @Override
    public int run(String[] args, PrintStream out) throws Exception {
        Args a = new Args(args, List.of("--model", "--elements"), List.of());
        String model = a.get("--model");
        if (model == null) {
            throw new UsageException("--model FILE is required");
        }
        Path path = Path.of(model);
        if (!Files.isRegularFile(path)) {
            throw new UsageException("--model " + model + ": no such file");
        }
        int elements = a.getInt("--elements", 8, 0, 1_000_000);
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
        return 0;
    }
}
