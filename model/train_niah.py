#!/usr/bin/env python3
"""Train the kvcache4j reference model: a small Llama on synthetic needle-in-a-haystack data.

Model: Llama (pre-RMSNorm eps 1e-5, RoPE theta 10000 in llama.cpp's NORMAL convention, i.e.
adjacent pairs (x[2i], x[2i+1]) rotated by pos * theta^(-2i/head_dim), GQA, SwiGLU, no biases,
untied output). Default shape d_model 128, 4 layers, 4 query heads, 2 KV heads (head_dim 32),
FFN 352, vocab 2048 (about 1.26 M parameters).

Loss: loss = CE(answer tokens) + text_weight * CE(haystack and question tokens), each term the
mean over its own tokens (so the answer keeps its weight at every length). text_weight defaults to
0.25: the model must also be a language model of the text (BOS attention sinks, local heads),
not only an answer copier. The needle's VALUE digits inside the haystack are random and carry no
loss; the EOS after the answer counts as text.

Schedule (all caps are fractions of the time left for training, so it adapts to the hardware):
curriculum L = 128, 256, 512, 1024, 2048, 4096 at a constant lr (after a short warm-up), moving on
when the running exact match reaches 0.97 or the stage's time cap is spent; then a mixed-length
stage over the last four lengths (and, for a quarter of the steps, any multiple of 128 up to the
longest) with lr decaying linearly (in time) from lr/2 to lr/20 until the deadline, which leaves time for the export and the evaluation (estimated by timing a forward pass
before training).

Works with torch 1.13 (CPU, hand-written chunked causal attention, CPU bf16 autocast) and torch 2.x
(uses F.scaled_dot_product_attention when present; CUDA bf16 autocast).
"""

import argparse
import collections
import json
import math
import os
import random
import sys
import time

# Sleeping (not spinning) OpenMP workers: on a small machine shared with other processes, spinning
# threads made CPU steps several times slower. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import niah_data as nd  # noqa: E402
import gguf_export  # noqa: E402

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")

# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

DEFAULT_CONFIG = dict(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn_hidden=352, vocab=2048,
                      rope_theta=10000.0, norm_eps=1e-5, max_seq=4160)


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):  # always fp32
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()


def rope_tables(head_dim, max_pos, theta):
    inv = theta ** (-(torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    ang = torch.arange(max_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def apply_rope(x, cos, sin):
    """x [B, T, heads, hd]; rotates adjacent pairs (x[2i], x[2i+1]) like llama.cpp's normal mode."""
    xf = x.float()
    x0 = xf[..., 0::2]
    x1 = xf[..., 1::2]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2).to(x.dtype)


def attend(q, k, v, hook=None, chunk=256):
    """Causal attention. q [B, H, T, hd]; k, v [B, H, S, hd] with S >= T (the last T keys are the
    queries' own positions). Softmax in fp32. hook(p, q_start) sees probabilities [B, H, t, S']."""
    B, H, T, hd = q.shape
    S = k.shape[2]
    offset = S - T
    if hook is None and HAS_SDPA:
        if T == S:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if T == 1:
            return F.scaled_dot_product_attention(q, k, v)
    scale = 1.0 / math.sqrt(hd)
    outs = []
    diag = None
    for i in range(0, T, chunk):
        j = min(T, i + chunk)
        end = offset + j
        s = torch.matmul(q[:, :, i:j], k[:, :, :end].transpose(-1, -2)).float() * scale
        if j - i > 1:  # only the last j - i keys can lie after a query of this chunk
            n = j - i
            if diag is None or diag.shape[0] != n:
                diag = torch.full((n, n), float("-inf"), device=q.device).triu(1)
            s = torch.cat([s[..., :end - n], s[..., end - n:] + diag], dim=-1)
        p = torch.softmax(s, dim=-1)
        if hook is not None:
            hook(p, offset + i)
        outs.append(torch.matmul(p.to(v.dtype), v[:, :, :end]))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, H, Hkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
        assert d % H == 0 and H % Hkv == 0
        self.H, self.Hkv, self.hd = H, Hkv, d // H
        self.wq = nn.Linear(d, H * self.hd, bias=False)
        self.wk = nn.Linear(d, Hkv * self.hd, bias=False)
        self.wv = nn.Linear(d, Hkv * self.hd, bias=False)
        self.wo = nn.Linear(H * self.hd, d, bias=False)

    def forward(self, x, cos, sin, past=None, hook=None):
        B, T, _ = x.shape
        q = apply_rope(self.wq(x).view(B, T, self.H, self.hd), cos, sin).transpose(1, 2)
        k = apply_rope(self.wk(x).view(B, T, self.Hkv, self.hd), cos, sin).transpose(1, 2)
        v = self.wv(x).view(B, T, self.Hkv, self.hd).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0].to(k.dtype), k], dim=2)
            v = torch.cat([past[1].to(v.dtype), v], dim=2)
        cache = (k, v)  # post-RoPE keys [B, Hkv, S, hd]
        rep = self.H // self.Hkv
        if rep > 1:  # query head h uses KV head h // rep (as llama.cpp)
            B_, _, S_, _ = k.shape
            k = k[:, :, None].expand(B_, self.Hkv, rep, S_, self.hd).reshape(B_, self.H, S_, self.hd)
            v = v[:, :, None].expand(B_, self.Hkv, rep, S_, self.hd).reshape(B_, self.H, S_, self.hd)
        out = attend(q, k, v, hook)
        return self.wo(out.transpose(1, 2).reshape(B, T, self.H * self.hd)), cache


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.w1 = nn.Linear(cfg["dim"], cfg["ffn_hidden"], bias=False)  # gate
        self.w3 = nn.Linear(cfg["dim"], cfg["ffn_hidden"], bias=False)  # up
        self.w2 = nn.Linear(cfg["ffn_hidden"], cfg["dim"], bias=False)  # down

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn_norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        self.attn = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        self.ffn = FeedForward(cfg)

    def forward(self, x, cos, sin, past=None, hook=None):
        h, cache = self.attn(self.attn_norm(x), cos, sin, past, hook)
        x = x + h
        x = x + self.ffn(self.ffn_norm(x))
        return x, cache


class Llama(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = dict(cfg)
        self.tok_embeddings = nn.Embedding(cfg["vocab"], cfg["dim"])
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layers"])])
        self.norm = RMSNorm(cfg["dim"], cfg["norm_eps"])
        self.output = nn.Linear(cfg["dim"], cfg["vocab"], bias=False)
        cos, sin = rope_tables(cfg["dim"] // cfg["n_heads"], cfg["max_seq"], cfg["rope_theta"])
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                s = std / math.sqrt(2 * self.cfg["n_layers"]) if name.endswith(("wo.weight", "w2.weight")) else std
                nn.init.normal_(p, mean=0.0, std=s)

    def forward(self, idx, past=None, hook=None, last_only=False):
        """idx [B, T] -> (logits [B, T or 1, vocab], per-layer (k, v) caches)."""
        T = idx.shape[1]
        pos0 = 0 if past is None else past[0][0].shape[2]
        if pos0 + T > self.rope_cos.shape[0]:
            raise ValueError("sequence longer than max_seq")
        cos = self.rope_cos[pos0:pos0 + T]
        sin = self.rope_sin[pos0:pos0 + T]
        x = self.tok_embeddings(idx).float()
        caches = []
        for li, layer in enumerate(self.layers):
            lh = None
            if hook is not None:
                lh = (lambda p, q0, li=li: hook(li, p, q0))
            x, c = layer(x, cos, sin, None if past is None else past[li], lh)
            caches.append(c)
        if last_only:
            x = x[:, -1:]
        return self.output(self.norm(x)), caches


def count_params(model):
    return sum(p.numel() for p in model.parameters())


def autocast(device, enabled):
    """bf16 autocast for 'cpu' or 'cuda' (torch.autocast exists in 1.10+)."""
    if not enabled:
        return _Null()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ---------------------------------------------------------------------------------------------
# Data feeding (optional worker processes, forked before CUDA is initialised)
# ---------------------------------------------------------------------------------------------

_MAKER = None


def _worker_make(index, L, batch):
    return _MAKER.make(index, L, batch)


class Feeder:
    """Requests batches ahead of use; with workers they are built in parallel processes."""

    def __init__(self, maker, workers, log):
        global _MAKER
        _MAKER = maker
        self.maker = maker
        self.pool = None
        self.queue = collections.deque()
        self.index = 0
        self.log = log
        if workers > 0:
            try:
                import multiprocessing as mp
                self.pool = mp.get_context("fork").Pool(workers)
                log("data: %d worker processes" % workers)
            except Exception as e:  # no usable multiprocessing: build batches inline
                log("data: worker pool unavailable (%s); building batches inline" % e)
                self.pool = None

    def request(self, tag, L, batch):
        idx = self.index
        self.index += 1
        fut = None
        if self.pool is not None:
            try:
                fut = self.pool.apply_async(_worker_make, (idx, L, batch))
            except Exception as e:
                self.log("data: worker submit failed (%s); building batches inline" % e)
                self.close()
        self.queue.append((tag, L, batch, idx, fut))

    def __len__(self):
        return len(self.queue)

    def get(self):
        tag, L, batch, idx, fut = self.queue.popleft()
        if fut is not None:
            try:
                return tag, L, fut.get(timeout=300)
            except Exception as e:
                self.log("data: worker failed (%s); building batches inline" % e)
                self.close()
        return tag, L, self.maker.make(idx, L, batch)

    def drop(self, keep):
        """Discard queued requests whose tag is not `keep` (results of running ones are ignored)."""
        self.queue = collections.deque(x for x in self.queue if x[0] == keep)

    def close(self):
        if self.pool is not None:
            try:
                self.pool.terminate()
            except Exception:
                pass
            self.pool = None


def batch_tensors(res, L, device):
    buf, meta = res
    B = len(meta)
    R = nd.row_length(L)
    rows = torch.frombuffer(bytearray(buf), dtype=torch.int16).view(B, R)
    meta_t = torch.tensor(meta, dtype=torch.long)
    if device.type == "cuda":
        rows = rows.pin_memory().to(device, non_blocking=True)
        meta_t = meta_t.pin_memory().to(device, non_blocking=True)
    return rows.long(), meta_t


def loss_masks(meta_t, L, S, device):
    """Answer and text masks over the S predicted positions (input index i predicts row[i + 1])."""
    pos = torch.arange(S, device=device)[None, :]
    T = meta_t[:, 0:1]
    vs = meta_t[:, 1:2]
    vl = meta_t[:, 2:3]
    ans = (pos >= L - 1) & (pos < L - 1 + T)
    text = (pos < L - 1) | (pos == L - 1 + T)
    text = text & ~((pos >= vs - 1) & (pos < vs - 1 + vl))
    return ans.float(), text.float()


def compute_loss(model, rows, meta_t, L, text_weight, device, bf16):
    inp = rows[:, :-1]
    lab = rows[:, 1:]
    B, S = inp.shape
    with autocast(device, bf16):
        logits, _ = model(inp)
    V = logits.shape[-1]
    ce = F.cross_entropy(logits.float().reshape(-1, V), lab.reshape(-1), reduction="none").view(B, S)
    ans, text = loss_masks(meta_t, L, S, device)
    la = (ce * ans).sum() / ans.sum()
    lt = (ce * text).sum() / text.sum().clamp(min=1.0)
    with torch.no_grad():
        pred = logits.argmax(-1)
        em = ((pred == lab) | (ans == 0)).all(dim=1).float().mean()
    return la + text_weight * lt, la.detach(), lt.detach(), em


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

CURRICULUM = (128, 256, 512, 1024, 2048, 4096)
STAGE_FRACTION = {128: 0.03, 256: 0.03, 512: 0.05, 1024: 0.07, 2048: 0.10, 4096: 0.12}
MIX_WEIGHTS = (0.15, 0.20, 0.25, 0.40)
MIX_ANY_LENGTH = 0.25  # share of mixed-stage steps at a random multiple of 128 in [256, max_len]


class Log:
    def __init__(self, path):
        self.fh = open(path, "a", encoding="utf-8") if path else None
        self.t0 = time.time()

    def __call__(self, msg):
        line = "[%7.1fs] %s" % (time.time() - self.t0, msg)
        print(line, flush=True)
        if self.fh:
            self.fh.write(line + "\n")
            self.fh.flush()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    ap.add_argument("--data", default=os.path.join(HERE, ".data"))
    ap.add_argument("--keys", default=os.path.join(HERE, "niah-keys.txt"), help="held-out KEY words")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-budget-min", type=float, default=40.0,
                    help="whole run (setup, training, export, evaluation) in minutes")
    ap.add_argument("--max-len", type=int, default=4096, help="longest prompt length trained and evaluated")
    ap.add_argument("--tokens-per-step", type=int, default=0, help="default 8192 on CPU, 32768 on CUDA")
    ap.add_argument("--lr", type=float, default=0.0, help="peak lr; default 1e-3 on CPU, 1.5e-3 on CUDA")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--text-weight", type=float, default=0.25)
    ap.add_argument("--em-target", type=float, default=0.97)
    ap.add_argument("--dim", type=int, default=DEFAULT_CONFIG["dim"])
    ap.add_argument("--layers", type=int, default=DEFAULT_CONFIG["n_layers"])
    ap.add_argument("--heads", type=int, default=DEFAULT_CONFIG["n_heads"])
    ap.add_argument("--kv-heads", type=int, default=DEFAULT_CONFIG["n_kv_heads"])
    ap.add_argument("--ffn", type=int, default=DEFAULT_CONFIG["ffn_hidden"])
    ap.add_argument("--vocab", type=int, default=DEFAULT_CONFIG["vocab"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; default 2 on CPU, 4 with CUDA")
    ap.add_argument("--workers", type=int, default=-1, help="batch worker processes; default 0 on CPU, "
                                                               "min(10, cores - 4) on CUDA")
    ap.add_argument("--no-bf16", action="store_true", help="train in fp32")
    ap.add_argument("--max-steps", type=int, default=0, help="stop training after this many steps (tests)")
    ap.add_argument("--eval-samples", type=int, default=5, help="samples per (length, depth) cell")
    ap.add_argument("--eval-max-s", type=float, default=0.0, help="cap on evaluation seconds (0: none)")
    ap.add_argument("--eval-dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--haystack", default=None, help="extra haystack text file for evaluation")
    ap.add_argument("--gguf-name", default="kvcache4j-niah.gguf")
    ap.add_argument("--skip-eval", action="store_true")
    return ap.parse_args(argv)


def resolve_device(name):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def model_config(args, vocab):
    cfg = dict(DEFAULT_CONFIG)
    cfg.update(dim=args.dim, n_layers=args.layers, n_heads=args.heads, n_kv_heads=args.kv_heads,
               ffn_hidden=args.ffn, vocab=vocab, max_seq=max(4096, args.max_len) + 64)
    return cfg


def verify_prompts(corpus, keys, lengths, rng, n=4):
    tok = corpus.tok
    for L in lengths:
        for k in range(n):
            d = (0.0, 1.0, rng.random(), rng.random())[k % 4]
            p = nd.build_prompt(corpus, L, nd.make_key(rng, keys.words, keys.common), nd.make_value(rng), d, rng,
                                with_text=True)
            if [tok.bos_id] + tok.encode(p.text) != p.tokens:
                raise RuntimeError("prompt tokens differ from the tokenized prompt text (L=%d)" % L)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    if args.haystack and not os.path.isfile(args.haystack):
        raise SystemExit("--haystack %s: no such file" % args.haystack)
    t_end = t_start + args.time_budget_min * 60.0
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "train.log")
    if os.path.exists(log_path):
        os.remove(log_path)
    log = Log(log_path)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    torch.set_num_threads(args.threads or (4 if cuda else 2))
    tokens_per_step = args.tokens_per_step or (32768 if cuda else 8192)
    lr_peak = args.lr or (1.5e-3 if cuda else 1e-3)
    workers = args.workers if args.workers >= 0 else (min(10, max(0, (os.cpu_count() or 1) - 4)) if cuda else 0)
    bf16 = not args.no_bf16
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    log("torch %s, python %s, device %s, threads %d, bf16 %s, sdpa %s" % (
        torch.__version__, sys.version.split()[0], device, torch.get_num_threads(), bf16, HAS_SDPA))
    log("args: %s" % json.dumps(vars(args), sort_keys=True))

    # data
    tok, train_c, held_c = nd.load_data(args.data, args.vocab, log=log)
    train_keys = nd.read_train_keys(os.path.join(args.data, "keys_train.txt"))
    held_keys = nd.read_heldout_keys(args.keys)
    overlap = set(train_keys.words) & set(held_keys.words)
    if overlap:
        raise RuntimeError("held-out KEY words among training KEYs: %s" % sorted(overlap)[:10])
    lengths = [L for L in CURRICULUM if L <= args.max_len]
    if not lengths:
        raise SystemExit("--max-len must be at least %d" % CURRICULUM[0])
    mix_lengths = lengths[-4:]
    mix_w = list(MIX_WEIGHTS[-len(mix_lengths):])
    verify_prompts(train_c, train_keys, lengths, random.Random(args.seed + 17))
    log("data: prompt construction verified at L=%s; %d training KEY words, %d held-out KEY words"
        % (lengths, len(train_keys.words), len(held_keys.words)))

    maker = nd.BatchMaker(train_c, train_keys, args.seed)
    feeder = Feeder(maker, workers, log)  # forks before CUDA initialisation

    if cuda:  # first CUDA call: after the fork
        log("gpu: %s" % torch.cuda.get_device_name(0))
    cfg = model_config(args, tok.vocab_size)
    model = Llama(cfg).to(device)
    log("model: %s, %d parameters" % (json.dumps(cfg), count_params(model)))
    opt_kw = dict(lr=lr_peak, betas=(0.9, 0.95), weight_decay=0.0)
    opt = None
    if cuda:
        try:
            opt = torch.optim.AdamW(model.parameters(), fused=True, **opt_kw)
        except (TypeError, RuntimeError):
            opt = None
    if opt is None:
        opt = torch.optim.AdamW(model.parameters(), **opt_kw)

    # time reserved for export + evaluation, from a timed forward pass of the evaluation shape
    import eval_niah
    eval_lengths = [L for L in eval_niah.EVAL_LENGTHS if L <= args.max_len] or [args.max_len]
    n_sets = 3 if args.haystack else 2
    if args.skip_eval:
        eval_est = 0.0
    else:
        eval_est = eval_niah.estimate_eval_seconds(model, device, eval_lengths, n_sets, args.eval_samples,
                                                   args.eval_dtype, log)
        if args.eval_max_s > 0:
            eval_est = min(eval_est, args.eval_max_s)
    reserve = eval_est + 10.0 + 0.02 * (t_end - t_start)
    train_deadline = t_end - reserve
    t_train0 = time.time()
    window = train_deadline - t_train0
    log("schedule: budget %.1f min, training window %.0f s, reserved %.0f s (evaluation estimate %.0f s); "
        "lengths %s then mixed %s; %d tokens/step, lr %.2g"
        % (args.time_budget_min, window, reserve, eval_est, lengths, mix_lengths, tokens_per_step, lr_peak))
    if window < 10:
        raise SystemExit("time budget too small")

    # curriculum state
    stages = [("L%d" % L, L) for L in lengths] + [("mixed", None)]
    stage_i = 0
    stage_t0 = time.time()
    stage_step = 0
    mix_rng = random.Random(args.seed + 101)
    em_window = 40 if cuda else 20
    recent_em = collections.deque(maxlen=em_window)
    pending = []  # device tensors (la, lt, em, loss) not yet read back
    history = []
    stage_summ = []
    step = 0
    last_log = time.time()
    tok_count = 0
    tok_t0 = time.time()
    sums = [0.0, 0.0, 0.0, 0.0, 0]
    depth_q = 2 * workers if feeder.pool is not None else 1
    mixed_t0 = None

    def plan_L():
        name, L = stages[stage_i]
        if L is None:  # mixed stage: mostly the evaluated lengths, a quarter anywhere in between
            if args.max_len >= 512 and mix_rng.random() < MIX_ANY_LENGTH:
                return 128 * mix_rng.randint(2, args.max_len // 128)
            return mix_rng.choices(mix_lengths, mix_w)[0]
        return L

    def flush_pending():
        if not pending:
            return
        vals = torch.stack([torch.stack(p) for p in pending]).float().cpu().tolist()
        for la, lt, em, lo in vals:
            recent_em.append(em)
            sums[0] += lo
            sums[1] += la
            sums[2] += lt
            sums[3] += em
            sums[4] += 1
        pending.clear()

    model.train()
    while True:
        now = time.time()
        if now >= train_deadline or (args.max_steps and step >= args.max_steps):
            break
        name, L_stage = stages[stage_i]
        # advance the curriculum
        if L_stage is not None:
            cap = STAGE_FRACTION[L_stage] * window
            flush_needed = stage_step > 0 and stage_step % 10 == 0
            if flush_needed:
                flush_pending()
            em_ok = len(recent_em) >= em_window and sum(recent_em) / len(recent_em) >= args.em_target
            if em_ok or now - stage_t0 >= cap:
                flush_pending()
                stage_summ.append(dict(stage=name, steps=stage_step, seconds=round(now - stage_t0, 1),
                                       running_em=round(sum(recent_em) / max(1, len(recent_em)), 4),
                                       reason="exact match" if em_ok else "time cap"))
                log("stage %s done: %d steps, %.0f s, running EM %.3f (%s)" % (
                    name, stage_step, now - stage_t0, stage_summ[-1]["running_em"], stage_summ[-1]["reason"]))
                stage_i += 1
                stage_t0 = now
                stage_step = 0
                recent_em.clear()
                name, L_stage = stages[stage_i]
                if L_stage is None:
                    mixed_t0 = now
                feeder.drop(stage_i)
                continue
        # keep the request queue full
        while len(feeder) < depth_q:
            L = plan_L()
            feeder.request(stage_i, L, max(1, tokens_per_step // L))
        tag, L, res = feeder.get()
        if tag != stage_i:
            continue
        # lr
        if L_stage is None:
            prog = min(1.0, max(0.0, (time.time() - mixed_t0) / max(1e-6, train_deadline - mixed_t0)))
            lr = lr_peak * (0.5 + (0.05 - 0.5) * prog)
        else:
            lr = lr_peak * min(1.0, (step + 1) / max(1, args.warmup))
        for g in opt.param_groups:
            g["lr"] = lr
        rows, meta_t = batch_tensors(res, L, device)
        loss, la, lt, em = compute_loss(model, rows, meta_t, L, args.text_weight, device, bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        pending.append((la, lt, em, loss.detach()))
        if not cuda or len(pending) >= 50:
            flush_pending()
        step += 1
        stage_step += 1
        tok_count += rows.shape[0] * (rows.shape[1] - 1)
        if time.time() - last_log >= (10.0 if cuda else 15.0):
            flush_pending()
            if cuda:
                torch.cuda.synchronize()
            t = time.time()
            n = max(1, sums[4])
            rec = dict(step=step, stage=name, L=L, loss=sums[0] / n, ans=sums[1] / n, text=sums[2] / n,
                       em=sums[3] / n, running_em=sum(recent_em) / max(1, len(recent_em)), lr=lr,
                       tok_s=tok_count / (t - tok_t0), elapsed=t - t_start)
            history.append({k: (round(v, 5) if isinstance(v, float) else v) for k, v in rec.items()})
            log("stage %-6s L=%-4d step %5d (stage %4d) loss %.3f ans %.3f text %.3f em %.3f run-em %.3f "
                "lr %.2e tok/s %.0f elapsed %.0fs" % (name, L, step, stage_step, rec["loss"], rec["ans"],
                                                     rec["text"], rec["em"], rec["running_em"], lr,
                                                     rec["tok_s"], rec["elapsed"]))
            sums[:] = [0.0, 0.0, 0.0, 0.0, 0]
            tok_count = 0
            tok_t0 = t
            last_log = t
    flush_pending()
    feeder.close()
    now = time.time()
    stage_summ.append(dict(stage=stages[stage_i][0], steps=stage_step, seconds=round(now - stage_t0, 1),
                           running_em=round(sum(recent_em) / max(1, len(recent_em)), 4), reason="deadline"))
    log("training done: %d steps in %.0f s; stages: %s" % (step, now - t_train0, json.dumps(stage_summ)))

    # checkpoint + export
    model.eval()
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    ckpt_path = os.path.join(args.out, "model.pt")
    torch.save({"config": cfg, "state_dict": state, "merges": tok.merge_strings(), "args": vars(args),
                "steps": step, "stages": stage_summ}, ckpt_path)
    gguf_path = os.path.join(args.out, args.gguf_name)
    gguf_export.export_llama(gguf_path, state, cfg, tok, context_length=cfg["max_seq"])
    gguf_export.verify_roundtrip(gguf_path, state, tok)
    size = os.path.getsize(gguf_path)
    log("export: %s (%.2f MB), round trip verified; checkpoint %s" % (gguf_path, size / 1e6, ckpt_path))
    if size > 25e6:
        log("WARNING: GGUF larger than 25 MB")
    check = eval_niah.logits_check(gguf_path, state, cfg, tok, train_c, log)

    summary = dict(config=cfg, parameters=count_params(model), steps=step, stages=stage_summ,
                   tokens_per_step=tokens_per_step, lr=lr_peak, text_weight=args.text_weight, seed=args.seed,
                   device=str(device), device_name=torch.cuda.get_device_name(0) if cuda else "cpu",
                   torch=torch.__version__, train_seconds=round(now - t_train0, 1), history=history,
                   gguf=os.path.basename(gguf_path), gguf_bytes=size, logits_check=check)
    if not args.skip_eval:
        try:
            ev_model, ev_tok = eval_niah.load_gguf_model(gguf_path)
            ev_model.to(device)
            cap = max(30.0, t_end - time.time() - 5.0)
            if args.eval_max_s > 0:
                cap = min(cap, args.eval_max_s)
            res = eval_niah.run_eval(ev_model, ev_tok, device, data_dir=args.data, keys_path=args.keys,
                                     haystack=args.haystack, lengths=eval_lengths, samples=args.eval_samples,
                                     seed=args.seed + 1000, dtype=args.eval_dtype, time_cap=cap, log=log,
                                     corpora=(train_c, held_c))
            summary["eval"] = res
        except Exception as e:  # the exported model stays usable; record what failed
            import traceback
            log("evaluation failed: %s\n%s" % (e, traceback.format_exc()))
            summary["eval_error"] = repr(e)
    summary["total_seconds"] = round(time.time() - t_start, 1)
    with open(os.path.join(args.out, "eval.json"), "w") as fh:
        json.dump(summary, fh, indent=1)
    log("wrote %s; total %.0f s (budget %.0f s)" % (os.path.join(args.out, "eval.json"), time.time() - t_start,
                                                  args.time_budget_min * 60))


if __name__ == "__main__":
    main()
