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
del k, v, kr, vr, logits


def median_ms(fn, runs=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[runs // 2]


# The peer: torch's own f16 decode attention (one query token, GQA) over the shapes DeviceCheck's
# benchmark times, next to a device-to-device copy of the same KV bytes, in the same process.
for n in (65536, 1 << 20):
    try:
        kk = torch.randn(1, kv_heads, n, d, device=dev, dtype=torch.float16)
        vv = torch.randn(1, kv_heads, n, d, device=dev, dtype=torch.float16)
        qq = torch.randn(1, qh, 1, d, device=dev, dtype=torch.float16)
        dst = torch.empty_like(kk)
        f = torch.nn.functional.scaled_dot_product_attention
        t_att = median_ms(lambda: f(qq, kk, vv, enable_gqa=True))
        t_copy = median_ms(lambda: (dst.copy_(kk), dst.copy_(vv)))
        gb = 2 * kk.numel() * 2 / 1e9
        print(f"torch sdpa f16 decode (enable_gqa) slots={n}: {t_att:.4f} ms -> KV read {gb / t_att * 1e3:.1f} GB/s; "
              f"d2d copy of the same bytes {t_copy:.4f} ms; sdpa/copy time {t_att / t_copy:.3f}")
        del kk, vv, qq, dst
        torch.cuda.empty_cache()
    except Exception as e:  # report, never fail the correctness verdict on the peer timing
        print(f"torch sdpa timing at slots={n} failed: {e}")
sys.exit(0 if ok else 1)
