#!/usr/bin/env python3
"""Independent oracle for the CUDA decode kernels: torch's scaled_dot_product_attention in float32 on
the same f16 rows that DeviceCheck's 'dump' mode wrote (k.bin, v.bin: [kvHeads][slots][d] f16; q.bin:
[queryHeads][d] f32; out.bin, lse.bin: the GPU kernels' result; meta.txt: kvHeads group d slots scale).
Prints the relative error of the output (max |a - e| / max |e| per head) and the largest lse error."""
import sys
import torch

d_ = sys.argv[1]
kv_heads, group, d, slots, scale = open(f"{d_}/meta.txt").read().split()
kv_heads, group, d, slots, scale = int(kv_heads), int(group), int(d), int(slots), float(scale)
qh = kv_heads * group


def load(name, dtype):
    return torch.frombuffer(bytearray(open(f"{d_}/{name}", "rb").read()), dtype=dtype)


torch.backends.cuda.matmul.allow_tf32 = False
dev = "cuda"
k = load("k.bin", torch.int16).view(torch.float16).view(kv_heads, slots, d).to(dev).float()
v = load("v.bin", torch.int16).view(torch.float16).view(kv_heads, slots, d).to(dev).float()
q = load("q.bin", torch.float32).view(qh, d).to(dev)
out = load("out.bin", torch.float32).view(qh, d).to(dev)
lse = load("lse.bin", torch.float32).view(qh).to(dev)
kr = k.repeat_interleave(group, dim=0)  # query head h reads KV head h // group
vr = v.repeat_interleave(group, dim=0)
qs = (q * scale).float()  # the kernel scales the query in float, then takes dot products
ref = torch.nn.functional.scaled_dot_product_attention(
    qs.view(1, qh, 1, d), kr.view(1, qh, slots, d), vr.view(1, qh, slots, d), scale=1.0).view(qh, d)
logits = torch.einsum("hd,hsd->hs", qs.double(), kr.double())
ref_lse = torch.logsumexp(logits, dim=1)
rel = ((out - ref).abs().amax(dim=1) / ref.abs().amax(dim=1).clamp_min(1e-30)).max().item()
lse_err = (lse.double() - ref_lse).abs().max().item()
ok = rel <= 1e-3 and lse_err <= 1e-3
print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}: kvHeads={kv_heads} group={group} d={d} "
      f"slots={slots}")
print(f"oracle sdpa(float32) vs GPU decode f16: rel {rel:.3e}  lse {lse_err:.3e}  {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
