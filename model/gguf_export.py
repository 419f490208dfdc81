#!/usr/bin/env python3
"""A small, self-contained GGUF v3 writer and reader (little-endian, no `gguf` package).

- GGUFWriter: metadata key/values + tensors (F32 or F16), aligned to general.alignment (32).
- read_gguf: parses a file back (metadata dict, tensor infos, tensors as torch tensors).
- export_llama: writes a trained model + tokenizer with llama.cpp's names and metadata.
- reference_forward: a plain numpy forward pass straight from a GGUF file that follows llama.cpp's
  conventions (ne[0] fastest; RoPE "normal" mode rotating adjacent pairs; GQA head h uses KV head
  h // (n_head / n_head_kv)), used to check an export against the torch model.

Tensor layout: GGUF lists dims fastest-varying first, so a torch Linear weight [out, in] is written
with dims [in, out] and its row-major data unchanged.
"""

import struct
import sys

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3

T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64, T_INT64, \
    T_FLOAT64 = range(13)
GGML_F32 = 0
GGML_F16 = 1

_SCALAR = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
           T_FLOAT32: "<f", T_BOOL: "<?", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d"}


def _pad(n, align):
    return (align - n % align) % align


def _tensor_bytes(t, ggml_type):
    """Row-major bytes of a torch tensor as little-endian f32 or f16."""
    import torch
    t = t.detach().cpu().contiguous()
    if ggml_type == GGML_F32:
        t = t.to(torch.float32)
        fmt = "<%df"
    elif ggml_type == GGML_F16:
        t = t.to(torch.float16)
        fmt = "<%de"
    else:
        raise ValueError("unsupported ggml type %d" % ggml_type)
    try:
        import numpy as np
        arr = t.numpy()
        return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    except Exception:
        vals = t.flatten().tolist()
        return struct.pack(fmt % len(vals), *vals)


class GGUFWriter:
    def __init__(self, alignment=32):
        self.alignment = alignment
        self.kv = []        # (key, type, value, elem_type)
        self.tensors = []   # (name, dims (ne order), ggml_type, bytes)
        self.add_uint32("general.alignment", alignment)

    def add(self, key, vtype, value, elem_type=None):
        if any(k == key for k, _, _, _ in self.kv):
            raise ValueError("duplicate key " + key)
        self.kv.append((key, vtype, value, elem_type))

    def add_uint32(self, key, v):
        self.add(key, T_UINT32, int(v))

    def add_int32(self, key, v):
        self.add(key, T_INT32, int(v))

    def add_float32(self, key, v):
        self.add(key, T_FLOAT32, float(v))

    def add_bool(self, key, v):
        self.add(key, T_BOOL, bool(v))

    def add_string(self, key, v):
        self.add(key, T_STRING, str(v))

    def add_array(self, key, elem_type, values):
        self.add(key, T_ARRAY, list(values), elem_type)

    def add_tensor(self, name, tensor, ggml_type):
        """tensor: torch tensor in its natural (row-major) shape; dims are written reversed."""
        dims = list(reversed(list(tensor.shape)))
        self.tensors.append((name, dims, ggml_type, _tensor_bytes(tensor, ggml_type)))

    @staticmethod
    def _string(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, value, elem_type=None):
        if vtype == T_STRING:
            return self._string(value)
        if vtype == T_ARRAY:
            out = [struct.pack("<IQ", elem_type, len(value))]
            if elem_type == T_STRING:
                out.extend(self._string(v) for v in value)
            else:
                out.append(struct.pack("<%d%s" % (len(value), _SCALAR[elem_type][1]), *value))
            return b"".join(out)
        return struct.pack(_SCALAR[vtype], value)

    def write(self, path):
        head = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv))]
        for key, vtype, value, et in self.kv:
            head.append(self._string(key))
            head.append(struct.pack("<I", vtype))
            head.append(self._value(vtype, value, et))
        offset = 0
        offsets = []
        for name, dims, gt, data in self.tensors:
            offsets.append(offset)
            head.append(self._string(name))
            head.append(struct.pack("<I", len(dims)))
            head.append(struct.pack("<%dQ" % len(dims), *dims))
            head.append(struct.pack("<IQ", gt, offset))
            offset += len(data) + _pad(len(data), self.alignment)
        header = b"".join(head)
        with open(path, "wb") as fh:
            fh.write(header)
            fh.write(b"\0" * _pad(len(header), self.alignment))
            for (name, dims, gt, data), off in zip(self.tensors, offsets):
                fh.write(data)
                fh.write(b"\0" * _pad(len(data), self.alignment))


class _Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.p)
        self.p += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.p:self.p + n].decode("utf-8")
        self.p += n
        return s

    def value(self, vtype):
        if vtype == T_STRING:
            return self.string()
        if vtype == T_ARRAY:
            et = self.take("<I")
            n = self.take("<Q")
            if et == T_STRING:
                return [self.string() for _ in range(n)]
            if et == T_ARRAY:
                return [self.value(T_ARRAY) for _ in range(n)]
            fmt = "<%d%s" % (n, _SCALAR[et][1])
            vals = list(struct.unpack_from(fmt, self.d, self.p))
            self.p += struct.calcsize(fmt)
            return vals
        return self.take(_SCALAR[vtype])


def read_gguf(path, load_tensors=True):
    """Returns (metadata dict, {name: (dims, ggml_type, torch tensor in row-major shape or None)})."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:4] != GGUF_MAGIC:
        raise ValueError("not a GGUF file")
    r = _Reader(data)
    r.p = 4
    version, n_tensors, n_kv = r.take("<IQQ")
    if version != GGUF_VERSION:
        raise ValueError("GGUF version %d" % version)
    meta = {}
    types = {}
    for _ in range(n_kv):
        key = r.string()
        vtype = r.take("<I")
        types[key] = vtype
        meta[key] = r.value(vtype)
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.take("<I")
        dims = list(struct.unpack_from("<%dQ" % nd, data, r.p))
        r.p += 8 * nd
        gt, off = r.take("<IQ")
        infos.append((name, dims, gt, off))
    align = meta.get("general.alignment", 32)
    base = r.p + _pad(r.p, align)
    tensors = {}
    import torch
    for name, dims, gt, off in infos:
        if off % align:
            raise ValueError("tensor %s misaligned" % name)
        n = 1
        for d in dims:
            n *= d
        t = None
        if load_tensors:
            if gt == GGML_F32:
                dt, size = torch.float32, 4
            elif gt == GGML_F16:
                dt, size = torch.float16, 2
            else:
                raise ValueError("unsupported ggml type %d" % gt)
            start = base + off
            buf = bytearray(data[start:start + n * size])
            t = torch.frombuffer(buf, dtype=dt).reshape(list(reversed(dims)))
        tensors[name] = (dims, gt, t)
    meta["__types__"] = types
    return meta, tensors


def export_llama(path, state, cfg, tok, name="kvcache4j-niah", context_length=4160):
    """Write a llama-architecture GGUF from a state dict of the model in train_niah.py."""
    w = GGUFWriter(32)
    w.add_string("general.architecture", "llama")
    w.add_string("general.name", name)
    w.add_uint32("llama.context_length", context_length)
    w.add_uint32("llama.embedding_length", cfg["dim"])
    w.add_uint32("llama.block_count", cfg["n_layers"])
    w.add_uint32("llama.feed_forward_length", cfg["ffn_hidden"])
    w.add_uint32("llama.attention.head_count", cfg["n_heads"])
    w.add_uint32("llama.attention.head_count_kv", cfg["n_kv_heads"])
    w.add_float32("llama.rope.freq_base", cfg["rope_theta"])
    w.add_uint32("llama.rope.dimension_count", cfg["dim"] // cfg["n_heads"])
    w.add_float32("llama.attention.layer_norm_rms_epsilon", cfg["norm_eps"])
    w.add_uint32("llama.vocab_size", tok.vocab_size)
    w.add_uint32("general.file_type", 1)  # mostly F16
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", "gpt-2")
    w.add_array("tokenizer.ggml.tokens", T_STRING, tok.tokens)
    w.add_array("tokenizer.ggml.token_type", T_INT32, tok.token_types())
    w.add_array("tokenizer.ggml.merges", T_STRING, tok.merge_strings())
    w.add_uint32("tokenizer.ggml.bos_token_id", tok.bos_id)
    w.add_uint32("tokenizer.ggml.eos_token_id", tok.eos_id)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_bool("tokenizer.ggml.add_eos_token", False)

    def mat(k):
        return state[k].float()

    w.add_tensor("token_embd.weight", mat("tok_embeddings.weight"), GGML_F16)
    for i in range(cfg["n_layers"]):
        p = "layers.%d." % i
        b = "blk.%d." % i
        w.add_tensor(b + "attn_norm.weight", mat(p + "attn_norm.weight"), GGML_F32)
        w.add_tensor(b + "attn_q.weight", mat(p + "attn.wq.weight"), GGML_F16)
        w.add_tensor(b + "attn_k.weight", mat(p + "attn.wk.weight"), GGML_F16)
        w.add_tensor(b + "attn_v.weight", mat(p + "attn.wv.weight"), GGML_F16)
        w.add_tensor(b + "attn_output.weight", mat(p + "attn.wo.weight"), GGML_F16)
        w.add_tensor(b + "ffn_norm.weight", mat(p + "ffn_norm.weight"), GGML_F32)
        w.add_tensor(b + "ffn_gate.weight", mat(p + "ffn.w1.weight"), GGML_F16)
        w.add_tensor(b + "ffn_up.weight", mat(p + "ffn.w3.weight"), GGML_F16)
        w.add_tensor(b + "ffn_down.weight", mat(p + "ffn.w2.weight"), GGML_F16)
    w.add_tensor("output_norm.weight", mat("norm.weight"), GGML_F32)
    w.add_tensor("output.weight", mat("output.weight"), GGML_F16)
    w.write(path)
    return w


GGUF_TO_STATE = {
    "token_embd.weight": "tok_embeddings.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "output.weight",
    "attn_norm.weight": "attn_norm.weight",
    "attn_q.weight": "attn.wq.weight",
    "attn_k.weight": "attn.wk.weight",
    "attn_v.weight": "attn.wv.weight",
    "attn_output.weight": "attn.wo.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "ffn.w1.weight",
    "ffn_up.weight": "ffn.w3.weight",
    "ffn_down.weight": "ffn.w2.weight",
}


def gguf_state_name(name):
    if name.startswith("blk."):
        _, i, rest = name.split(".", 2)
        return "layers.%s.%s" % (i, GGUF_TO_STATE[rest])
    return GGUF_TO_STATE[name]


def config_from_meta(meta):
    return {
        "dim": int(meta["llama.embedding_length"]),
        "n_layers": int(meta["llama.block_count"]),
        "n_heads": int(meta["llama.attention.head_count"]),
        "n_kv_heads": int(meta["llama.attention.head_count_kv"]),
        "ffn_hidden": int(meta["llama.feed_forward_length"]),
        "vocab": len(meta["tokenizer.ggml.tokens"]),
        "rope_theta": float(meta["llama.rope.freq_base"]),
        "norm_eps": float(meta["llama.attention.layer_norm_rms_epsilon"]),
        "max_seq": int(meta["llama.context_length"]),
    }


def verify_roundtrip(path, state, tok=None):
    """Reads the file back: every tensor matches the state dict (F16 within rounding), metadata sane."""
    import torch
    meta, tensors = read_gguf(path)
    assert meta["general.architecture"] == "llama"
    assert meta["__types__"]["llama.context_length"] == T_UINT32
    assert meta["__types__"]["tokenizer.ggml.add_bos_token"] == T_BOOL
    n = 0
    for name, (dims, gt, t) in tensors.items():
        ref = state[gguf_state_name(name)].detach().float().cpu()
        assert list(reversed(dims)) == list(ref.shape), (name, dims, ref.shape)
        if gt == GGML_F32:
            assert torch.equal(t.float(), ref), name
        else:
            assert gt == GGML_F16, name
            assert torch.equal(t, ref.to(torch.float16)), name
        n += 1
    assert n == len([k for k in state if not k.startswith("rope")]), (n, len(state))
    if tok is not None:
        assert meta["tokenizer.ggml.tokens"] == tok.tokens
        assert meta["tokenizer.ggml.merges"] == tok.merge_strings()
        assert meta["tokenizer.ggml.token_type"][-1] == 3
        assert meta["tokenizer.ggml.bos_token_id"] == tok.bos_id
    return meta, tensors


def reference_forward(path_or_parsed, ids):
    """Logits [len(ids), vocab] (numpy float64) computed from the GGUF tensors alone."""
    import numpy as np
    meta, tensors = read_gguf(path_or_parsed) if isinstance(path_or_parsed, str) else path_or_parsed
    cfg = config_from_meta(meta)

    def W(name):  # row-major [out, in] as float64
        return tensors[name][2].double().numpy()

    d, H, Hkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    hd = d // H
    eps = cfg["norm_eps"]
    T = len(ids)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x):  # x [T, heads, hd]; llama.cpp normal mode: pairs (2i, 2i+1)
        out = x.copy()
        for p in range(T):
            for i0 in range(0, hd, 2):
                theta = p * cfg["rope_theta"] ** (-i0 / hd)
                c, s = np.cos(theta), np.sin(theta)
                x0 = x[p, :, i0]
                x1 = x[p, :, i0 + 1]
                out[p, :, i0] = x0 * c - x1 * s
                out[p, :, i0 + 1] = x0 * s + x1 * c
        return out

    x = W("token_embd.weight")[np.array(ids)]
    for l in range(cfg["n_layers"]):
        b = "blk.%d." % l
        h = rms(x, W(b + "attn_norm.weight"))
        q = rope((h @ W(b + "attn_q.weight").T).reshape(T, H, hd))
        k = rope((h @ W(b + "attn_k.weight").T).reshape(T, Hkv, hd))
        v = (h @ W(b + "attn_v.weight").T).reshape(T, Hkv, hd)
        att = np.zeros((T, H, hd))
        for hh in range(H):
            kh = hh // (H // Hkv)
            s = q[:, hh] @ k[:, kh].T / np.sqrt(hd)
            s = s + np.triu(np.full((T, T), -np.inf), 1)
            s = np.exp(s - s.max(-1, keepdims=True))
            s = s / s.sum(-1, keepdims=True)
            att[:, hh] = s @ v[:, kh]
        x = x + att.reshape(T, H * hd) @ W(b + "attn_output.weight").T
        h = rms(x, W(b + "ffn_norm.weight"))
        g = h @ W(b + "ffn_gate.weight").T
        u = h @ W(b + "ffn_up.weight").T
        x = x + (g / (1 + np.exp(-g)) * u) @ W(b + "ffn_down.weight").T
    x = rms(x, W("output_norm.weight"))
    return x @ W("output.weight").T


def main():
    meta, tensors = read_gguf(sys.argv[1])
    for k, v in meta.items():
        if k == "__types__":
            continue
        if isinstance(v, list):
            print("%s: [%d items] %s" % (k, len(v), v[:8]))
        else:
            print("%s: %r" % (k, v))
    for name, (dims, gt, t) in tensors.items():
        print("%-28s %-14s %s" % (name, dims, {0: "F32", 1: "F16"}.get(gt, gt)))


if __name__ == "__main__":
    main()
