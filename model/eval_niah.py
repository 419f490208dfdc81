#!/usr/bin/env python3
"""NIAH evaluation of a trained model (GGUF file or torch checkpoint), with a KV cache.

For each text set and prompt length L in {512, 1024, 2048, 4096} and each of 10 needle depths
(0, 1/9, ..., 1), N prompts are built with held-out KEYs (niah-keys.txt; 1-3 words, mixed case)
and decoded greedily: prefill the prompt, then one token at a time from the cache. Decoding stops
after a "." that follows a digit, at a newline, at EOS, or after 16 tokens. A prompt counts when
the generated text contains VALUE as a whole digit run.

Text sets: (a) training text, (b) held-out fortune categories, (c) optionally windows of --haystack.

Attention structure (explicit softmax, fp32), per layer and head, averaged over a few prompts:
  sink    mean attention mass on position 0 (BOS) over queries at positions >= 16
  local   mean mass on the last 16 positions (the query's own included)
  needle  for the query that predicts the answer's first digit: mass on the needle's VALUE digits
  first   ... and on the needle's first VALUE digit alone

Usage: python3 model/eval_niah.py --gguf model/out/kvcache4j-niah.gguf [--haystack FILE] [--out eval.json]
"""

import argparse
import json
import math
import os
import random
import re
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import niah_data as nd  # noqa: E402
import gguf_export  # noqa: E402
from train_niah import Llama, autocast  # noqa: E402

EVAL_LENGTHS = (512, 1024, 2048, 4096)
DEPTHS = tuple(i / 9.0 for i in range(10))
MAX_NEW = 16


def load_gguf_model(path):
    meta, tensors = gguf_export.read_gguf(path)
    cfg = gguf_export.config_from_meta(meta)
    model = Llama(cfg)
    state = {gguf_export.gguf_state_name(n): t.float() for n, (dims, gt, t) in tensors.items()}
    model.load_state_dict(state)
    tok = nd.Tokenizer.from_merge_strings(meta["tokenizer.ggml.merges"])
    if tok.tokens != meta["tokenizer.ggml.tokens"]:
        raise ValueError("GGUF tokens do not follow from its merges")
    if meta["tokenizer.ggml.bos_token_id"] != tok.bos_id:
        raise ValueError("unexpected BOS id")
    return model.eval(), tok


def load_checkpoint_model(path):
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:
        ck = torch.load(path, map_location="cpu")
    model = Llama(ck["config"])
    model.load_state_dict(ck["state_dict"])
    return model.eval(), nd.Tokenizer.from_merge_strings(ck["merges"])


def stop_after(tok, ids):
    """True when greedy decoding stops after the generated ids."""
    t = ids[-1]
    if t == tok.eos_id:
        return True
    s = tok.decode([t])
    if "\n" in s:
        return True
    if "." in s:
        before = tok.decode(ids[:-1]) + s[:s.index(".")]
        if any(c.isdigit() for c in before):
            return True
    return len(ids) >= MAX_NEW


def value_found(text, value):
    return re.search(r"(?<!\d)%s(?!\d)" % value, text) is not None


@torch.no_grad()
def generate(model, tok, prompts, device, dtype="fp32"):
    """Greedy continuation of equal-length prompts with a KV cache; returns generated id lists."""
    x = torch.tensor(prompts, dtype=torch.long, device=device)
    bf16 = dtype == "bf16"
    with autocast(device, bf16):
        logits, cache = model(x, last_only=True)
    n = len(prompts)
    out = [[] for _ in range(n)]
    done = [False] * n
    for _ in range(MAX_NEW):
        nxt = logits[:, -1].float().argmax(-1).tolist()
        for i, t in enumerate(nxt):
            if not done[i]:
                out[i].append(t)
                done[i] = stop_after(tok, out[i])
        if all(done):
            break
        with autocast(device, bf16):
            logits, cache = model(torch.tensor(nxt, dtype=torch.long, device=device)[:, None], past=cache)
    return out


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def estimate_eval_seconds(model, device, lengths, n_sets, samples, dtype, log=None):
    """Seconds the evaluation will take, from a timed prefill and decode step of the largest length."""
    model.eval()
    Lmax = max(lengths)
    B = 2
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, model.cfg["vocab"], (B, Lmax), generator=g).to(device)
    bf16 = dtype == "bf16"
    with autocast(device, bf16):
        model(x[:, :64], last_only=True)  # warm-up
        _sync(device)
        t0 = time.time()
        logits, cache = model(x, last_only=True)
        _sync(device)
        t_pre = (time.time() - t0) / B
        t1 = time.time()
        for _ in range(3):
            logits, cache2 = model(x[:, :1], past=cache)
        _sync(device)
        t_dec = (time.time() - t1) / 3
    model.train()
    n_batches = n_sets * samples * len(lengths)
    prompts = n_sets * samples * len(DEPTHS)
    pre = sum(prompts * t_pre * L / Lmax for L in lengths)
    att = 4 * t_pre * 3
    est = 1.3 * (pre + n_batches * MAX_NEW * t_dec + att) + 10.0
    if log:
        log("eval estimate: prefill %.3f s per %d-token prompt, decode step %.4f s, %d prompts -> %.0f s"
            % (t_pre, Lmax, t_dec, prompts * len(lengths), est))
    return est


def text_sets(tok, data_dir, haystack, corpora=None):
    sets = []
    if corpora is not None and corpora[0].tok.tokens == tok.tokens:
        train_c, held_c = corpora
    else:
        train_c = nd.Corpus(tok, nd.read_text(os.path.join(data_dir, "train.txt")), "train")
        held_c = nd.Corpus(tok, nd.read_text(os.path.join(data_dir, "heldout.txt")), "heldout")
    sets.append(("train-text", train_c))
    sets.append(("heldout-text", held_c))
    if haystack:
        sets.append(("haystack:" + os.path.basename(haystack),
                     nd.Corpus(tok, nd.read_text(haystack), "haystack")))
    return sets


@torch.no_grad()
def attention_stats(model, tok, corpus, keys, L, device, seed=7, n=4):
    """Per layer and head: BOS sink mass, last-16 locality, needle (VALUE) mass at the first digit."""
    model.eval()
    cfg = model.cfg
    NL, H = cfg["n_layers"], cfg["n_heads"]
    acc = {k: torch.zeros(NL, H, dtype=torch.float64) for k in ("sink", "local", "needle", "first")}
    nq = torch.zeros(NL, H, dtype=torch.float64)
    rng = random.Random(seed)
    depths = (0.1, 0.35, 0.65, 0.9)
    for s in range(n):
        p = nd.build_prompt(corpus, L, nd.make_key(rng, keys.words), nd.make_value(rng), depths[s % 4], rng)
        seq = p.tokens + p.answer[:1]  # last position predicts the answer's first digit
        last = len(seq) - 1
        vpos = torch.tensor(p.value_pos)

        def hook(li, prob, q0):
            pr = prob[0].double().cpu()  # [H, t, S']
            t = pr.shape[1]
            qpos = torch.arange(q0, q0 + t)[:, None]
            kpos = torch.arange(pr.shape[2])[None, :]
            sel = (qpos[:, 0] >= 16)
            if sel.any():
                loc = ((kpos <= qpos) & (kpos > qpos - 16)).double()
                acc["sink"][li] += pr[:, sel, 0].sum(-1)
                acc["local"][li] += (pr * loc[None]).sum(-1)[:, sel].sum(-1)
                nq[li] += float(sel.sum())
            if q0 <= last < q0 + t:
                row = pr[:, last - q0]
                acc["needle"][li] += row[:, vpos].sum(-1)
                acc["first"][li] += row[:, vpos[0]]

        model(torch.tensor([seq], dtype=torch.long, device=device), hook=hook)
    out = []
    for li in range(NL):
        heads = []
        for h in range(H):
            heads.append(dict(sink=round(float(acc["sink"][li, h] / nq[li, h]), 4),
                              local=round(float(acc["local"][li, h] / nq[li, h]), 4),
                              needle=round(float(acc["needle"][li, h] / n), 4),
                              first=round(float(acc["first"][li, h] / n), 4)))
        out.append(heads)
    return dict(length=L, prompts=n, layers=out)


def run_eval(model, tok, device, data_dir, keys_path, haystack=None, lengths=EVAL_LENGTHS, samples=5, seed=1000,
             dtype="fp32", time_cap=0.0, log=print, corpora=None, attention_len=2048):
    t0 = time.time()
    model.eval()
    keys = nd.read_heldout_keys(keys_path)
    sets = text_sets(tok, data_dir, haystack, corpora)
    lengths = list(lengths)
    cells = {name: {L: [[0, 0] for _ in DEPTHS] for L in lengths} for name, _ in sets}
    failures = []
    stopped = False
    n_done = 0
    for s in range(samples):  # sample-major: a time cap leaves every cell with some samples
        for si, (name, corpus) in enumerate(sets):
            for L in lengths:
                if time_cap and time.time() - t0 > time_cap:
                    stopped = True
                    break
                rng = random.Random(seed * 7919 + si * 104729 + L * 31 + s)
                prompts = []
                for d in DEPTHS:
                    key = nd.make_key(rng, keys.words)
                    prompts.append(nd.build_prompt(corpus, L, key, nd.make_value(rng), d, rng))
                gens = generate(model, tok, [p.tokens for p in prompts], device, dtype)
                for di, (p, g) in enumerate(zip(prompts, gens)):
                    text = tok.decode(g)
                    ok = value_found(text, p.value)
                    cells[name][L][di][0] += int(ok)
                    cells[name][L][di][1] += 1
                    n_done += 1
                    if not ok and len(failures) < 40:
                        failures.append(dict(set=name, L=L, depth=round(DEPTHS[di], 3), key=p.key, value=p.value,
                                             generated=text))
            if stopped:
                break
        if stopped:
            break
    t_niah = time.time() - t0
    # table
    res = dict(depths=[round(d, 4) for d in DEPTHS], lengths=lengths, samples_per_cell=samples,
               prompts=n_done, seconds=round(t_niah, 1), stopped_by_time_cap=stopped, sets={})
    lines = []
    hdr = "%-22s %5s %6s | %s" % ("set", "L", "acc", " ".join("%5.2f" % d for d in DEPTHS))
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for name, _ in sets:
        res["sets"][name] = {}
        for L in lengths:
            c = cells[name][L]
            ok = sum(a for a, b in c)
            tot = sum(b for a, b in c)
            acc = ok / tot if tot else float("nan")
            res["sets"][name][str(L)] = dict(accuracy=round(acc, 4), correct=ok, total=tot,
                                             by_depth=[[a, b] for a, b in c])
            lines.append("%-22s %5d %6.3f | %s" % (name, L, acc, " ".join(
                ("%5.2f" % (a / b)) if b else "    -" for a, b in c)))
    res["failures"] = failures
    # attention structure
    La = min(attention_len, max(lengths))
    ta = time.time()
    att = attention_stats(model, tok, sets[1][1], keys, La, device)
    res["attention"] = att
    lines.append("")
    lines.append("attention at L=%d (%d prompts, held-out text): sink = mass on BOS, local = mass on last 16 "
                 "positions, needle/first = mass on the needle VALUE digits / first digit at the answer" % (
                     La, att["prompts"]))
    lines.append("%5s %4s %7s %7s %7s %7s" % ("layer", "head", "sink", "local", "needle", "first"))
    for li, heads in enumerate(att["layers"]):
        for h, st in enumerate(heads):
            lines.append("%5d %4d %7.3f %7.3f %7.3f %7.3f" % (li, h, st["sink"], st["local"], st["needle"],
                                                              st["first"]))
    res["table"] = lines
    log("evaluation: %d prompts in %.0f s%s, attention %.1f s" % (
        n_done, t_niah, " (stopped by the time cap)" if stopped else "", time.time() - ta))
    for ln in lines:
        log(ln)
    for f in failures[:8]:
        log("miss: %s" % json.dumps(f))
    return res


@torch.no_grad()
def logits_check(gguf_path, state, cfg, tok, corpus, log=print, n_tokens=40):
    """Compare the trained weights, the GGUF loaded into torch, a numpy llama.cpp-convention forward
    from the GGUF file, and cached (incremental) decoding. Returns relative errors."""
    rng = random.Random(3)
    p = nd.build_prompt(corpus, 128, "Blue Heron", "7716633", 0.5, rng)
    ids = p.tokens[:n_tokens]
    m_t = Llama(cfg)
    m_t.load_state_dict(state)
    m_t.eval()
    m_g, tok_g = load_gguf_model(gguf_path)
    x = torch.tensor([ids])
    lt = m_t(x)[0][0].double()
    lg = m_g(x)[0][0].double()

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max())

    out = dict(tokens=len(ids), torch_vs_gguf_torch=rel(lt, lg))
    # cached decoding: prefill all but the last 6 tokens, then one at a time
    k = len(ids) - 6
    logits, cache = m_g(x[:, :k])
    inc = [logits[0]]
    for i in range(k, len(ids)):
        lo, cache = m_g(x[:, i:i + 1], past=cache)
        inc.append(lo[0])
    out["cached_vs_full"] = rel(torch.cat(inc, 0).double(), lg)
    try:
        import numpy  # noqa: F401
        ref = torch.from_numpy(gguf_export.reference_forward(gguf_path, ids))
        out["gguf_torch_vs_numpy_reference"] = rel(lg, ref)
        out["trained_vs_numpy_reference"] = rel(lt, ref)
    except ImportError:
        out["numpy_reference"] = "numpy not available"
    log("logits check: %s" % json.dumps({k: (("%.2e" % v) if isinstance(v, float) else v) for k, v in out.items()}))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf")
    ap.add_argument("--checkpoint")
    ap.add_argument("--data", default=os.path.join(HERE, ".data"))
    ap.add_argument("--keys", default=os.path.join(HERE, "niah-keys.txt"))
    ap.add_argument("--haystack")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--lengths", default=",".join(map(str, EVAL_LENGTHS)))
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--time-cap", type=float, default=0.0)
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.gguf:
        model, tok = load_gguf_model(a.gguf)
    elif a.checkpoint:
        model, tok = load_checkpoint_model(a.checkpoint)
    else:
        ap.error("--gguf or --checkpoint is required")
    dev = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) or a.device == "cuda"
                       else "cpu")
    model.to(dev)
    res = run_eval(model, tok, dev, a.data, a.keys, a.haystack, [int(x) for x in a.lengths.split(",")], a.samples,
                   a.seed, a.dtype, a.time_cap)
    if a.out:
        with open(a.out, "w") as fh:
            json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main()
