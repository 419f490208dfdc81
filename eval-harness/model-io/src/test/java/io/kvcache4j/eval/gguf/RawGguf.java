package io.kvcache4j.eval.gguf;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** Hand-assembled GGUF bytes, independent of {@link GgufWriter}, for crafting malformed files. */
final class RawGguf {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    static RawGguf header(int version, long tensors, long kvs) {
        return new RawGguf().u32(GgufParser.MAGIC).u32(version).u64(tensors).u64(kvs);
    }

    RawGguf u8(int v) {
        out.write(v);
        return this;
    }

    RawGguf u32(long v) {
        for (int i = 0; i < 4; i++) {
            out.write((int) (v >>> (8 * i)));
        }
        return this;
    }

    RawGguf u64(long v) {
        for (int i = 0; i < 8; i++) {
            out.write((int) (v >>> (8 * i)));
        }
        return this;
    }

    RawGguf str(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        u64(b.length);
        out.writeBytes(b);
        return this;
    }

    /** A key with a value type id; the value follows. */
    RawGguf key(String k, GgufValueType t) {
        return str(k).u32(t.id());
    }

    RawGguf tensor(String name, GgmlType type, long offset, long... ne) {
        str(name).u32(ne.length);
        for (long d : ne) {
            u64(d);
        }
        return u32(type.id()).u64(offset);
    }

    RawGguf padTo(int alignment) {
        while (out.size() % alignment != 0) {
            out.write(0);
        }
        return this;
    }

    RawGguf zeros(int n) {
        out.writeBytes(new byte[n]);
        return this;
    }

    int size() {
        return out.size();
    }

    byte[] bytes() {
        return out.toByteArray();
    }
}
