#!/usr/bin/env python3
"""Self-tests of the model pipeline: /usr/bin/python3 model/test_pipeline.py

Tokenizer (pre-tokenizer on tricky strings, BPE round trip, no digit merges), prompt construction
(exact length, needle depth, tokens == tokenized text), RoPE convention, GGUF round trip and a
llama.cpp-convention numpy forward from the file, KV-cache consistency, a tiny training run.
Uses model/.data when prepare_data.sh has run, else a small built-in text.
"""

import os
import random
import sys
import tempfile
import unittest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import niah_data as nd  # noqa: E402
import gguf_export  # noqa: E402
import train_niah as tn  # noqa: E402

torch.set_num_threads(2)

FALLBACK_TEXT = """The quick brown fox jumps over the lazy dog. It wasn't the first time! Was it the last?
"Certainly not," said the fox. The dog didn't answer; it was asleep.

A journey of 1,000 miles begins with a single step.  -- Lao Tzu

Naïve café owners serve crème brûlée at 7:30 p.m. on weekdays. Isn't that nice? They'll say yes.
Programs must be written for people to read, and only incidentally for machines to execute.
  -- Abelson & Sussman
"""


def _data():
    d = os.path.join(HERE, ".data")
    if os.path.exists(os.path.join(d, "train.txt")):
        tok, train, held = nd.load_data(d, log=lambda m: None)
        keys = nd.read_train_keys(os.path.join(d, "keys_train.txt"))
        return tok, train, held, keys
    text = "\n\n".join([FALLBACK_TEXT] * 40)
    tok = nd.train_bpe(nd.count_pretokens(text), 512)
    corp = nd.Corpus(tok, text)
    return tok, corp, corp, nd.KeySource(["apple", "river", "stone", "lantern", "violet"])


TOK, TRAIN, HELD, KEYS = _data()


class PreTokenizer(unittest.TestCase):
    CASES = [
        ("Hello world", ["Hello", " world"]),
        ("don't stop", ["don", "'t", " stop"]),
        ("I'll  be there\n\nok", ["I", "'ll", " ", " be", " there", "\n", "\n", "ok"]),
        ("  leading", [" ", " leading"]),
        ("trailing   ", ["trailing", "   "]),
        (" 12345.", [" 12345", "."]),
        ("is 765666.\nQuestion", ["is", " 765666", ".", "\n", "Question"]),
        ("abc123def", ["abc", "123", "def"]),
        ("Wait...what?!", ["Wait", "...", "what", "?!"]),
        ("naïve café", ["naïve", " café"]),
        ("x\u00a0y", ["x", "\u00a0", "y"]),
        ("'s'", ["'s", "'"]),
        ("we've they're I'm", ["we", "'ve", " they", "'re", " I", "'m"]),
        ("'", ["'"]),
        ("a\tb", ["a", "\t", "b"]),
        ("tab\t\tend", ["tab", "\t", "\t", "end"]),
        ("  -- Mark Twain", [" ", " --", " Mark", " Twain"]),
        (" ", [" "]),
        ("\n", ["\n"]),
        ("x \n y", ["x", " \n", " y"]),
        ("Ⅻ ½ ²", ["Ⅻ", " ½", " ²"]),
        ("日本語テキスト。", ["日本語テキスト", "。"]),
        ("emoji 🙂🙂 ok", ["emoji", " 🙂🙂", " ok"]),
        ("<|endoftext|>", ["<|", "endoftext", "|>"]),
        ("", []),
    ]

    def test_tricky_strings(self):
        for s, want in self.CASES:
            self.assertEqual(nd.pretokenize_scan(s), want, repr(s))
            self.assertEqual(nd.pretokenize(s), want, repr(s))
            self.assertEqual("".join(nd.pretokenize(s)), s)

    def test_ascii_fast_path_equals_scanner(self):
        rng = random.Random(1)
        alphabet = "ab Z09'.,!-\n\t  sltdmrve\"()"
        for _ in range(3000):
            s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            self.assertEqual(nd._ASCII_RE.findall(s), nd.pretokenize_scan(s), repr(s))

    def test_against_regex_module_if_present(self):
        try:
            import regex
        except ImportError:
            self.skipTest("regex module not installed")
        pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
        rng = random.Random(2)
        alphabet = "aé Z9½'.,\n\t\u00a0 日-\u0301٣\u2028\u3000x"
        for _ in range(3000):
            s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
            self.assertEqual(pat.findall(s), nd.pretokenize_scan(s), repr(s))


class BPE(unittest.TestCase):
    def test_vocab_layout(self):
        self.assertEqual(TOK.tokens[:256], [nd.BYTE_ENCODER[b] for b in range(256)])
        self.assertEqual(TOK.tokens[-1], "<|endoftext|>")
        self.assertEqual(TOK.bos_id, TOK.vocab_size - 1)
        self.assertEqual(TOK.token_types().count(3), 1)
        self.assertEqual(len(set(TOK.tokens)), TOK.vocab_size)
        for a, b in TOK.merges:
            self.assertIn(a, TOK.token_to_id)
            self.assertIn(b, TOK.token_to_id)

    def test_round_trip(self):
        samples = [FALLBACK_TEXT, "The special magic number for Blue Heron is 7716633.",
                   "Ünïcödé ☃ text — with “quotes” and emoji 🙂", "  spaces   and\ttabs\n\n\nnewlines ",
                   TRAIN.texts[0], HELD.texts[-1], "\x00\x01 control bytes \x7f"]
        for s in samples:
            self.assertEqual(TOK.decode(TOK.encode(s)), s)

    def test_no_digit_merges(self):
        for t in TOK.tokens[256:-1]:
            self.assertFalse(any(c in nd.DIGITS for c in t), t)
        ids = TOK.encode(" 12345")
        self.assertEqual([TOK.tokens[i] for i in ids], ["Ġ", "1", "2", "3", "4", "5"])
        ids = TOK.encode(" 765666.")
        self.assertEqual([TOK.tokens[i] for i in ids], ["Ġ", "7", "6", "5", "6", "6", "6", "."])

    def test_merge_order_is_rank_order(self):
        # applying merges by rank reproduces every merged token from its bytes
        for i, (a, b) in enumerate(TOK.merges[:300]):
            word = bytes(nd.BYTE_DECODER[c] for c in a + b).decode("utf-8", errors="ignore")
            if word and nd.pretokenize(word) == [word]:
                ids = TOK.bpe(word)
                self.assertEqual(TOK.decode(ids), word)


class Prompts(unittest.TestCase):
    def test_exact_length_and_text(self):
        rng = random.Random(3)
        corp_l = [(TRAIN, L) for L in (128, 256, 512, 1024)] + [(HELD, 2048)]
        for corp, L in corp_l:
            for d in (0.0, 0.1, 0.5, 0.9, 1.0):
                key = nd.make_key(rng, KEYS.words, KEYS.common)
                value = nd.make_value(rng)
                p = nd.build_prompt(corp, L, key, value, d, rng, with_text=True)
                self.assertEqual(len(p.tokens), L)
                self.assertEqual(p.tokens[0], TOK.bos_id)
                self.assertEqual([TOK.bos_id] + TOK.encode(p.text), p.tokens)
                q = nd.question_text(key)
                self.assertTrue(p.text.endswith(q))
                needle = nd.needle_sentence(key, value)
                self.assertEqual(p.text.count(needle), 1)
                self.assertEqual(TOK.decode([p.tokens[i] for i in p.value_pos]), value)
                pos = p.text.index(needle)
                if d == 0.0:
                    self.assertEqual(pos, 0)
                    self.assertEqual(p.text[len(needle)], " ")
                else:
                    self.assertEqual(p.text[pos - 1], " ")
                    self.assertFalse(p.text[pos - 2].isspace())
                    after = p.text[pos + len(needle):]
                    self.assertTrue(after.startswith("\nQuestion:") if d == 1.0 else after[0].isspace())
                if d == 1.0:
                    self.assertTrue(p.text.endswith(needle + q))
                # realised depth near the requested one (sentence granularity)
                hay_tokens = L - 1 - len(TOK.encode(q)) - len(TOK.encode(needle if d == 0 else " " + needle))
                real = (p.needle_pos - 1) / hay_tokens
                self.assertAlmostEqual(real, p.depth, places=6)
                if L >= 512:
                    self.assertLess(abs(real - d), 0.15, (L, d, real))
                self.assertEqual([TOK.tokens[i] for i in p.answer],
                                 ["Ġ"] + list(value) + ["."])

    def test_key_and_value_distribution(self):
        rng = random.Random(4)
        vals = [nd.make_value(rng) for _ in range(2000)]
        self.assertTrue(all(5 <= len(v) <= 8 and v[0] != "0" and v.isdigit() for v in vals))
        rep = sum(1 for v in vals if any(v[i] == v[i + 1] for i in range(len(v) - 1)))
        self.assertGreater(rep / len(vals), 0.4)
        keys = [nd.make_key(rng, ["alpha", "beta"]) for _ in range(500)]
        self.assertTrue(any(" " in k for k in keys))
        self.assertTrue(any(k[0].isupper() for k in keys))
        self.assertTrue(any(k.isupper() for k in keys))

    def test_heldout_keys_not_in_training(self):
        kp = os.path.join(HERE, "niah-keys.txt")
        tp = os.path.join(HERE, ".data", "keys_train.txt")
        held = nd.read_heldout_keys(kp).words
        self.assertGreaterEqual(len(held), 300)
        self.assertTrue(all(w.isalpha() and w.islower() and 4 <= len(w) <= 10 for w in held))
        if os.path.exists(tp):
            self.assertFalse(set(held) & set(nd.read_train_keys(tp).words))

    def test_batch_maker(self):
        bm = nd.BatchMaker(TRAIN, KEYS, seed=5)
        buf, meta = bm.make(0, 128, 4)
        rows = torch.frombuffer(bytearray(buf), dtype=torch.int16).view(4, nd.row_length(128)).long()
        for r, (T, vs, vl) in zip(rows.tolist(), meta):
            self.assertEqual(r[0], TOK.bos_id)
            ans = r[128:128 + T]
            self.assertEqual(TOK.decode(ans)[1:-1], TOK.decode(r[vs:vs + vl]))
            self.assertTrue(all(t == TOK.eos_id for t in r[128 + T:]))
        self.assertEqual(bm.make(0, 128, 4), (buf, meta))  # deterministic


class Rope(unittest.TestCase):
    def test_adjacent_pairs(self):
        hd, theta = 8, 10000.0
        cos, sin = tn.rope_tables(hd, 64, theta)
        x = torch.randn(1, 64, 1, hd)
        y = tn.apply_rope(x, cos, sin)
        for p in (0, 1, 5, 63):
            for i0 in range(0, hd, 2):  # llama.cpp ggml_rope (mode 0)
                ang = p * theta ** (-i0 / hd)
                x0, x1 = x[0, p, 0, i0].item(), x[0, p, 0, i0 + 1].item()
                c, s = torch.cos(torch.tensor(ang, dtype=torch.float64)).item(), \
                    torch.sin(torch.tensor(ang, dtype=torch.float64)).item()
                self.assertAlmostEqual(y[0, p, 0, i0].item(), x0 * c - x1 * s, places=4)
                self.assertAlmostEqual(y[0, p, 0, i0 + 1].item(), x0 * s + x1 * c, places=4)

    def test_relative_positions(self):
        # q.k after RoPE depends only on the distance between positions
        hd = 32
        cos, sin = tn.rope_tables(hd, 200, 10000.0)
        q = torch.randn(hd)
        k = torch.randn(hd)

        def dot(pq, pk):
            qq = tn.apply_rope(q.view(1, 1, 1, hd), cos[pq:pq + 1], sin[pq:pq + 1]).flatten()
            kk = tn.apply_rope(k.view(1, 1, 1, hd), cos[pk:pk + 1], sin[pk:pk + 1]).flatten()
            return float(qq @ kk)

        self.assertAlmostEqual(dot(10, 3), dot(107, 100), places=3)


def tiny_cfg(vocab):
    return dict(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, ffn_hidden=64, vocab=vocab, rope_theta=10000.0,
                norm_eps=1e-5, max_seq=600)


class Gguf(unittest.TestCase):
    def test_round_trip_and_reference_forward(self):
        torch.manual_seed(0)
        cfg = tiny_cfg(TOK.vocab_size)
        model = tn.Llama(cfg).eval()
        with torch.no_grad():  # non-trivial norm weights
            for n, p in model.named_parameters():
                if p.dim() == 1:
                    p.add_(torch.randn_like(p) * 0.3)
        state = {k: v.detach().float() for k, v in model.state_dict().items()}
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.gguf")
            gguf_export.export_llama(path, state, cfg, TOK, context_length=cfg["max_seq"])
            meta, tensors = gguf_export.verify_roundtrip(path, state, TOK)
            self.assertEqual(os.path.getsize(path) % 32, 0)
            self.assertEqual(meta["tokenizer.ggml.model"], "gpt2")
            self.assertEqual(meta["tokenizer.ggml.pre"], "gpt-2")
            self.assertEqual(tensors["blk.0.attn_k.weight"][0], [32, 16])  # [in, out]
            self.assertEqual(tensors["token_embd.weight"][0], [32, TOK.vocab_size])
            self.assertEqual(tensors["blk.1.ffn_norm.weight"][1], gguf_export.GGML_F32)
            self.assertEqual(tensors["output.weight"][1], gguf_export.GGML_F16)
            import eval_niah
            m2, tok2 = eval_niah.load_gguf_model(path)
            self.assertEqual(tok2.tokens, TOK.tokens)
            ids = [TOK.bos_id] + TOK.encode("The special magic number for Heron is 7716633. And so on")[:30]
            with torch.no_grad():
                lg = m2(torch.tensor([ids]))[0][0].double()
            try:
                ref = torch.from_numpy(gguf_export.reference_forward(path, ids))
            except ImportError:
                self.skipTest("numpy not installed")
            err = float((lg - ref).abs().max() / ref.abs().max())
            self.assertLess(err, 1e-5)


class Cache(unittest.TestCase):
    def test_cached_decoding_equals_full_forward(self):
        torch.manual_seed(1)
        m = tn.Llama(tiny_cfg(TOK.vocab_size)).eval()
        x = torch.randint(0, TOK.vocab_size, (2, 300))
        with torch.no_grad():
            full = m(x)[0]
            lo, cache = m(x[:, :290])
            parts = [lo]
            for i in range(290, 300):
                lo, cache = m(x[:, i:i + 1], past=cache)
                parts.append(lo)
            inc = torch.cat(parts, 1)
            # chunked manual attention agrees with the default path
            q = torch.randn(2, 4, 300, 8)
            k = torch.randn(2, 4, 300, 8)
            v = torch.randn(2, 4, 300, 8)
            a1 = tn.attend(q, k, v, chunk=64, hook=lambda p, q0: None)
            a2 = tn.attend(q, k, v, chunk=1000)
        self.assertLess(float((full - inc).abs().max()), 1e-4)
        self.assertLess(float((a1 - a2).abs().max()), 1e-5)


class SdpaPath(unittest.TestCase):
    """The torch-2 branch (F.scaled_dot_product_attention) with a reference stand-in on torch 1.13."""

    def test_sdpa_branch_matches_manual_attention(self):
        import types

        def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
            s = (q @ k.transpose(-1, -2)).float() / q.shape[-1] ** 0.5
            if is_causal:
                T, S = s.shape[-2:]
                s = s.masked_fill(torch.ones(T, S, dtype=torch.bool).triu(1), float("-inf"))
            return (torch.softmax(s, -1).to(v.dtype)) @ v

        torch.manual_seed(4)
        m = tn.Llama(tiny_cfg(TOK.vocab_size)).eval()
        x = torch.randint(0, TOK.vocab_size, (2, 50))
        old_f, old_has = tn.F, tn.HAS_SDPA
        try:
            with torch.no_grad():
                tn.HAS_SDPA = False
                ref = m(x)[0]
                lo_ref, c = m(x[:, :49])
                step_ref = m(x[:, 49:], past=c)[0]
                shim = types.SimpleNamespace(**{k: getattr(old_f, k) for k in dir(old_f) if not k.startswith("__")})
                shim.scaled_dot_product_attention = sdpa
                tn.F, tn.HAS_SDPA = shim, True
                out = m(x)[0]
                lo, c = m(x[:, :49])
                step = m(x[:, 49:], past=c)[0]
        finally:
            tn.F, tn.HAS_SDPA = old_f, old_has
        self.assertLess(float((out - ref).abs().max()), 1e-5)
        self.assertLess(float((step - step_ref).abs().max()), 1e-5)
        self.assertLess(float((step[:, 0] - ref[:, 49]).abs().max()), 1e-4)


class Training(unittest.TestCase):
    def test_few_steps_lower_the_loss(self):
        torch.manual_seed(2)
        cfg = tiny_cfg(TOK.vocab_size)
        m = tn.Llama(cfg)
        opt = torch.optim.AdamW(m.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0)
        bm = nd.BatchMaker(TRAIN, KEYS, seed=3)
        dev = torch.device("cpu")
        res = bm.make(0, 128, 8)  # the same batch each step: the loss must fall
        rows, meta = tn.batch_tensors(res, 128, dev)
        losses = []
        for step in range(12):
            loss, la, lt, em = tn.compute_loss(m, rows, meta, 128, 0.25, dev, True)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
            losses.append(float(loss))
        self.assertLess(losses[-1], losses[0] * 0.9, losses)

    def test_loss_masks(self):
        meta = torch.tensor([[7, 20, 5], [10, 40, 8]])
        ans, text = tn.loss_masks(meta, 64, 64 + nd.MAX_ANSWER, torch.device("cpu"))
        self.assertEqual(ans[0].nonzero().flatten().tolist(), list(range(63, 70)))
        self.assertEqual(ans[1].nonzero().flatten().tolist(), list(range(63, 73)))
        self.assertEqual(text[0, 19:24].tolist(), [0.0] * 5)  # the needle's digits carry no loss
        self.assertEqual(text[0, 70].item(), 1.0)              # EOS after the answer
        self.assertEqual(text[0, 71:].sum().item(), 0.0)       # padding
        self.assertEqual((ans * text).sum().item(), 0.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
