#!/usr/bin/env python3
"""Tokenizer and needle-in-a-haystack (NIAH) data for the kvcache4j reference model.

Contents
- A GPT-2 style byte-level BPE tokenizer that llama.cpp reproduces exactly when the GGUF file says
  tokenizer.ggml.model = "gpt2" and tokenizer.ggml.pre = "gpt-2":
  * pre-tokenizer: the GPT-2 pattern
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
    written as a hand scanner that mirrors llama.cpp's unicode_regex_split_custom_gpt2
    (whitespace = the Unicode White_Space set; letters/numbers from unicodedata categories),
    with an equivalent `re` fast path for pure-ASCII text;
  * GPT-2 byte -> unicode map; token ids 0..255 are the bytes themselves;
  * merges learned from the training text; no merge ever involves an ASCII digit, so every digit
    stays a token of its own (" 12345" -> "Ġ" "1" "2" "3" "4" "5");
  * one special token <|endoftext|> (the last id), used as BOS and EOS.
- The prompt template and exact-length prompt construction (see build_prompt).
- Corpus preparation from Debian's fortunes and the held-out KEY word list (CLI: prepare, cache).

Runs on Python 3.9+ with the standard library only.
"""

import argparse
import hashlib
import json
import os
import pickle
import random
import re
import sys
import time
import unicodedata
from collections import Counter

SPECIAL_TOKEN = "<|endoftext|>"
DIGITS = "0123456789"

# ---------------------------------------------------------------------------------------------
# Pre-tokenizer
# ---------------------------------------------------------------------------------------------

# Unicode White_Space property (what llama.cpp's unicode tables call whitespace).
WHITESPACE = frozenset(chr(c) for c in (
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
    + list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]))

_CLASS = {}


def char_class(c):
    """'W' whitespace, 'L' letter, 'N' number, 'P' anything else."""
    r = _CLASS.get(c)
    if r is None:
        if c in WHITESPACE:
            r = "W"
        else:
            cat = unicodedata.category(c)[0]
            r = "L" if cat == "L" else ("N" if cat == "N" else "P")
        _CLASS[c] = r
    return r


def pretokenize_scan(text):
    """GPT-2 pre-tokenizer as a scanner; mirrors llama.cpp unicode_regex_split_custom_gpt2."""
    n = len(text)
    cls = [char_class(c) for c in text]
    out = []
    pos = 0
    while pos < n:
        c = text[pos]
        # 's|'t|'re|'ve|'m|'ll|'d
        if c == "'" and pos + 1 < n:
            c1 = text[pos + 1]
            if c1 in "stmd":
                out.append(text[pos:pos + 2])
                pos += 2
                continue
            if pos + 2 < n:
                c2 = text[pos + 2]
                if (c1 == "r" and c2 == "e") or (c1 == "v" and c2 == "e") or (c1 == "l" and c2 == "l"):
                    out.append(text[pos:pos + 3])
                    pos += 3
                    continue
        if c == " ":
            k = cls[pos + 1] if pos + 1 < n else "S"  # S: past the end
        else:
            k = cls[pos]
        if k == "L" or k == "N" or k == "P":
            start = pos
            if c == " ":
                pos += 1
            while pos < n and cls[pos] == k:
                pos += 1
            out.append(text[start:pos])
            continue
        # whitespace: \s+(?!\S) | \s+
        m = 0
        while pos + m < n and cls[pos + m] == "W":
            m += 1
        if m > 1 and pos + m < n:
            out.append(text[pos:pos + m - 1])
            pos += m - 1
            continue
        if m > 0:
            out.append(text[pos:pos + m])
            pos += m
            continue
        out.append(text[pos])  # not reached: every char is W, L, N or P
        pos += 1
    return out


# For ASCII text the same pattern in Python's re (with re.ASCII, \s is exactly [\t\n\v\f\r ]).
_ASCII_RE = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+",
                       re.ASCII)


def pretokenize(text):
    if text.isascii():
        return _ASCII_RE.findall(text)
    return pretokenize_scan(text)


# ---------------------------------------------------------------------------------------------
# Byte-level BPE
# ---------------------------------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_ENCODER = bytes_to_unicode()
BYTE_DECODER = {v: k for k, v in BYTE_ENCODER.items()}
_DIGIT_SYMS = frozenset(BYTE_ENCODER[ord(d)] for d in DIGITS)  # the digits map to themselves


def word_symbols(word):
    return [BYTE_ENCODER[b] for b in word.encode("utf-8")]


class Tokenizer:
    """Byte-level BPE: ids 0..255 are bytes, then one id per merge in rank order, then <|endoftext|>."""

    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.tokens = [BYTE_ENCODER[b] for b in range(256)] + [a + b for a, b in self.merges] + [SPECIAL_TOKEN]
        self.token_to_id = {t: i for i, t in enumerate(self.tokens)}
        if len(self.token_to_id) != len(self.tokens):
            raise ValueError("duplicate token strings")
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.bos_id = self.eos_id = len(self.tokens) - 1
        self.vocab_size = len(self.tokens)
        self._cache = {}

    # token types as written to GGUF: 1 normal, 3 control
    def token_types(self):
        return [1] * (self.vocab_size - 1) + [3]

    def merge_strings(self):
        return [a + " " + b for a, b in self.merges]

    def bpe(self, word):
        """Token ids of one pre-token (lowest-rank pair first, all its occurrences left to right)."""
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        syms = word_symbols(word)
        ranks = self.ranks
        while len(syms) > 1:
            best = None
            best_rank = None
            for i in range(len(syms) - 1):
                r = ranks.get((syms[i], syms[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best_rank = r
                    best = (syms[i], syms[i + 1])
            if best is None:
                break
            a, b = best
            merged = []
            i = 0
            while i < len(syms):
                if i < len(syms) - 1 and syms[i] == a and syms[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(syms[i])
                    i += 1
            syms = merged
        t2i = self.token_to_id
        ids = tuple(t2i[s] for s in syms)
        if len(self._cache) < 500000:
            self._cache[word] = ids
        return ids

    def encode(self, text):
        """Token ids of text (no BOS; special-token text is not parsed)."""
        out = []
        for w in pretokenize(text):
            out.extend(self.bpe(w))
        return out

    def decode_bytes(self, ids):
        bs = bytearray()
        for i in ids:
            if i == self.eos_id:
                bs.extend(SPECIAL_TOKEN.encode("utf-8"))
            else:
                bs.extend(BYTE_DECODER[c] for c in self.tokens[i])
        return bytes(bs)

    def decode(self, ids):
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def to_json(self):
        return {"merges": self.merge_strings()}

    @classmethod
    def from_merge_strings(cls, merges):
        return cls([tuple(m.split(" ")) for m in merges])


def train_bpe(word_counts, vocab_size=2048, log=None):
    """Learn vocab_size - 257 merges from pre-token counts (dict word -> count).

    Incremental pair counts with a lazy max-heap; ties go to the lexicographically smallest pair so
    the result is independent of hash seeds and dict order. Pairs with a digit on either side are
    never merged.
    """
    import heapq
    n_merges = vocab_size - 256 - 1
    words = []
    freqs = []
    for w in sorted(word_counts):
        words.append(word_symbols(w))
        freqs.append(word_counts[w])
    pair_counts = Counter()
    where = {}
    for wi, syms in enumerate(words):
        f = freqs[wi]
        for i in range(len(syms) - 1):
            p = (syms[i], syms[i + 1])
            if p[0] in _DIGIT_SYMS or p[1] in _DIGIT_SYMS:
                continue
            pair_counts[p] += f
            s = where.get(p)
            if s is None:
                where[p] = s = set()
            s.add(wi)

    # heap entries: (-count, pair); pairs order lexicographically as tuples of str
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    t0 = time.time()
    while len(merges) < n_merges and heap:
        negc, p = heapq.heappop(heap)
        c = pair_counts.get(p, 0)
        if c != -negc:
            if c > 0:
                heapq.heappush(heap, (-c, p))
            continue
        if c < 2:
            break
        merges.append(p)
        a, b = p
        ab = a + b
        changed = Counter()
        for wi in sorted(where.pop(p, ())):
            syms = words[wi]
            f = freqs[wi]
            # remove old pair counts of this word
            for i in range(len(syms) - 1):
                q = (syms[i], syms[i + 1])
                if q in pair_counts and not (q[0] in _DIGIT_SYMS or q[1] in _DIGIT_SYMS):
                    pair_counts[q] -= f
                    changed[q] -= f
            new = []
            i = 0
            while i < len(syms):
                if i < len(syms) - 1 and syms[i] == a and syms[i + 1] == b:
                    new.append(ab)
                    i += 2
                else:
                    new.append(syms[i])
                    i += 1
            words[wi] = new
            for i in range(len(new) - 1):
                q = (new[i], new[i + 1])
                if q[0] in _DIGIT_SYMS or q[1] in _DIGIT_SYMS:
                    continue
                pair_counts[q] += f
                changed[q] += f
                s = where.get(q)
                if s is None:
                    where[q] = s = set()
                s.add(wi)
        pair_counts.pop(p, None)
        for q, d in changed.items():
            if q == p:
                continue
            c2 = pair_counts.get(q, 0)
            if c2 <= 0:
                pair_counts.pop(q, None)
                where.pop(q, None)
            elif d > 0:
                heapq.heappush(heap, (-c2, q))
    if log:
        log("bpe: %d merges in %.1f s" % (len(merges), time.time() - t0))
    return Tokenizer(merges)


def count_pretokens(text):
    return Counter(pretokenize(text))


# ---------------------------------------------------------------------------------------------
# Corpus: sentence segments, pre-tokenized once
# ---------------------------------------------------------------------------------------------

_SENT_END = ".!?"
_CLOSERS = "\"')]"


def split_segments(text):
    """Split text at sentence boundaries (and blank lines) into segments.

    A boundary is the start of a whitespace run that follows a sentence end (. ! ? optionally
    followed by closing quotes/brackets) or that contains a blank line. Every segment except the
    first starts with whitespace and every segment ends with a non-whitespace character, so the
    tokenization of a concatenation of segments is the concatenation of their tokenizations.
    """
    text = text.strip()
    segs = []
    prev = 0
    for m in re.finditer(r"\s+", text):
        p = m.start()
        if p == 0:
            continue
        run = m.group()
        c1 = text[p - 1]
        ok = c1 in _SENT_END or (c1 in _CLOSERS and p >= 2 and text[p - 2] in _SENT_END) or "\n\n" in run
        if ok:
            segs.append(text[prev:p])
            prev = p
    segs.append(text[prev:])
    return [s for s in segs if s.strip()]


class Corpus:
    """Haystack source: sentence segments with their token ids (leading whitespace included)."""

    def __init__(self, tok, text, name="corpus"):
        self.tok = tok
        self.name = name
        self.texts = split_segments(text)
        self.toks = [tok.encode(s) for s in self.texts]
        self.n_tokens = sum(len(t) for t in self.toks)
        self._first = {}
        self.find_starts()

    def find_starts(self):
        """Segments that make natural window starts (capital letter, digit, quote or bracket)."""
        st = []
        for i, s in enumerate(self.texts):
            c = s.lstrip()[:1]
            if c and (c.isupper() or c.isdigit() or c in "\"'(["):
                st.append(i)
        self.starts = st or list(range(len(self.texts)))

    def first_tokens(self, i, prefix):
        """Tokens of segment i without its leading whitespace, after `prefix` ('' or ' ')."""
        key = (i, prefix)
        t = self._first.get(key)
        if t is None:
            t = self.tok.encode(prefix + self.texts[i].lstrip())
            if len(self._first) < 200000:
                self._first[key] = t
        return t

    def first_text(self, i, prefix):
        return prefix + self.texts[i].lstrip()


def truncate_to_tokens(tok, text, r):
    """A prefix of text that ends in a non-whitespace character and tokenizes to exactly r tokens.

    Returns (prefix_text, ids) or None. Cut points are pre-token ends; when the count falls inside a
    multi-token pre-token, shorter character prefixes of that pre-token are tried (longest first).
    The prefix is followed in a prompt by whitespace, so its tokens are the same in context.
    """
    if r <= 0:
        return None
    cum = 0
    ids = []
    pos = 0
    for pc in pretokenize(text):
        t = tok.bpe(pc)
        if cum + len(t) <= r:
            ids.extend(t)
            cum += len(t)
            pos += len(pc)
            if cum == r and char_class(pc[-1]) != "W":
                return text[:pos], ids
            continue
        need = r - cum
        for j in range(len(pc) - 1, 0, -1):
            sub = pc[:j]
            if char_class(sub[-1]) == "W":
                continue
            t2 = tok.encode(sub)
            if len(t2) == need:
                return text[:pos + j], ids + t2
        return None
    return None


# ---------------------------------------------------------------------------------------------
# KEY, VALUE, depth, prompt
# ---------------------------------------------------------------------------------------------

def needle_sentence(key, value):
    return "The special magic number for %s is %s." % (key, value)


def question_text(key):
    return "\nQuestion: What is the special magic number for %s?\nAnswer: The special magic number for %s is" % (key, key)


def answer_text(value):
    return " %s." % value


def make_key(rng, words, common=None, max_words=3):
    n = rng.choices([1, 2, 3], [0.5, 0.33, 0.17])[0]
    n = min(n, max_words)
    parts = []
    for _ in range(n):
        pool = common if (common and rng.random() < 0.5) else words
        w = rng.choice(pool)
        r = rng.random()
        if r < 0.6:
            parts.append(w)
        elif r < 0.92:
            parts.append(w[:1].upper() + w[1:])
        else:
            parts.append(w.upper())
    return " ".join(parts)


def make_value(rng, p_repeat=0.3):
    """5-8 digits, first digit 1-9; with probability p_repeat a value rich in repeated digits."""
    n = rng.randint(5, 8)
    d = [rng.choice("123456789")]
    if rng.random() < p_repeat:
        p = rng.uniform(0.3, 0.65)
        for _ in range(n - 1):
            d.append(d[-1] if rng.random() < p else rng.choice(DIGITS))
    else:
        for _ in range(n - 1):
            d.append(rng.choice(DIGITS))
    return "".join(d)


def sample_depth(rng, L):
    """Training depth: 5% exactly 0, 5% exactly 1; at L >= 2048 another 35% in [0, 0.25]."""
    r = rng.random()
    if r < 0.05:
        return 0.0
    if r < 0.10:
        return 1.0
    if L >= 2048 and r < 0.45:
        return rng.uniform(0.0, 0.25)
    return rng.random()


class Prompt:
    __slots__ = ("tokens", "answer", "key", "value", "depth", "needle_pos", "value_pos", "text")

    def __init__(self, tokens, answer, key, value, depth, needle_pos, value_pos, text=None):
        self.tokens = tokens          # BOS + prompt, exactly L ids
        self.answer = answer          # ids of " VALUE."
        self.key = key
        self.value = value
        self.depth = depth            # realised relative depth of the needle in the haystack
        self.needle_pos = needle_pos  # index of the needle's first token in tokens
        self.value_pos = value_pos    # indices of the needle's VALUE digit tokens in tokens
        self.text = text


def build_prompt(corpus, L, key, value, depth, rng, start=None, with_text=False, tries=20):
    """Prompt of exactly L tokens: BOS, haystack with the needle at relative depth, question.

    Text (H = haystack window starting at a sentence start, ending in a non-space character,
    N = needle sentence, Q = question):
      depth == 0:  N + " " + H + Q
      otherwise:   H[:p] + " " + N + H[p:] + Q, p = the sentence boundary nearest depth*len(H)
                   (p = len(H) for depth 1), where H[p:] starts with the boundary's whitespace.
    The haystack length is chosen so that 1 + tokens(text) == L.
    """
    tok = corpus.tok
    n_seg = len(corpus.texts)
    q_ids = tok.encode(question_text(key))
    needle = needle_sentence(key, value)
    at_start = depth <= 0.0
    n_ids = tok.encode(needle if at_start else " " + needle)
    budget = L - 1 - len(n_ids) - len(q_ids)
    if budget < 8:
        raise ValueError("L=%d too short for this needle and question" % L)
    for attempt in range(tries):
        i = rng.choice(corpus.starts) if (start is None or attempt > 0) else start % n_seg
        prefix = " " if at_start else ""
        pieces = []       # token lists
        texts = []
        joins = []        # token offsets of segment joins inside H
        first = corpus.first_tokens(i, prefix)
        cur_text = corpus.first_text(i, prefix)
        cur = first
        total = 0
        j = i
        ok = False
        while True:
            if total + len(cur) <= budget:
                pieces.append(cur)
                texts.append(cur_text)
                total += len(cur)
                if total == budget:
                    ok = True
                    break
                joins.append(total)
                j = (j + 1) % n_seg
                cur = corpus.toks[j]
                cur_text = corpus.texts[j]
                continue
            tr = truncate_to_tokens(tok, cur_text, budget - total)
            if tr is None:
                break
            texts.append(tr[0])
            pieces.append(tr[1])
            total += len(tr[1])
            ok = True
            break
        if not ok:
            continue
        hay = []
        for pc in pieces:
            hay.extend(pc)
        n_h = len(hay)
        if at_start:
            b = 0
            real_depth = 0.0
        elif depth >= 1.0 or not joins:
            b = n_h
            real_depth = 1.0
        else:
            target = depth * n_h
            cands = joins + [n_h]
            b = min(cands, key=lambda c: (abs(c - target), c))
            real_depth = b / n_h
        tokens = [tok.bos_id] + hay[:b] + n_ids + hay[b:] + q_ids
        assert len(tokens) == L, (len(tokens), L)
        needle_pos = 1 + b
        nv = len(value)
        # n_ids ends with the VALUE digits and "."
        value_pos = list(range(needle_pos + len(n_ids) - 1 - nv, needle_pos + len(n_ids) - 1))
        text = None
        if with_text:
            htext = "".join(texts)
            if at_start:
                text = needle + htext
            else:
                # character position of the boundary
                if b == n_h:
                    cpos = len(htext)
                else:
                    k = joins.index(b) + 1
                    cpos = sum(len(t) for t in texts[:k])
                text = htext[:cpos] + " " + needle + htext[cpos:]
            text = text + question_text(key)
        return Prompt(tokens, tok.encode(answer_text(value)), key, value, real_depth, needle_pos, value_pos, text)
    raise RuntimeError("could not build a prompt of %d tokens" % L)


# ---------------------------------------------------------------------------------------------
# Training batches
# ---------------------------------------------------------------------------------------------

MAX_ANSWER = 10  # "Ġ" + up to 8 digits + "."


def row_length(L):
    """Tokens per training row: prompt (L) + answer (<= MAX_ANSWER) + EOS, padded with EOS."""
    return L + MAX_ANSWER + 1


class KeySource:
    def __init__(self, words, common=None):
        self.words = list(words)
        self.common = list(common) if common else None


class BatchMaker:
    """Builds training batches. Each row is BOS + prompt (L tokens) + answer + EOS, padded with EOS to
    row_length(L); the model reads row[:-1] and predicts row[1:]. Batches depend only on
    (seed, index, L, batch), so worker processes give the same data as the main process."""

    def __init__(self, corpus, keys, seed):
        self.corpus = corpus
        self.keys = keys
        self.seed = seed

    def make(self, index, L, batch):
        """Returns (int16 token bytes [batch, row_length(L)], [(answer_len, value_start, value_len)])."""
        import array
        rng = random.Random((self.seed * 1000003 + index * 7919 + L) & 0xFFFFFFFFFFFF)
        tok = self.corpus.tok
        R = row_length(L)
        buf = array.array("h")
        meta = []
        for _ in range(batch):
            key = make_key(rng, self.keys.words, self.keys.common)
            value = make_value(rng)
            depth = sample_depth(rng, L)
            p = build_prompt(self.corpus, L, key, value, depth, rng)
            row = p.tokens + p.answer
            row = row + [tok.eos_id] * (R - len(row))
            buf.extend(row)
            meta.append((len(p.answer), p.value_pos[0], len(p.value_pos)))
        return buf.tobytes(), meta


# ---------------------------------------------------------------------------------------------
# Data preparation (fortunes -> train/heldout text; KEY word lists)
# ---------------------------------------------------------------------------------------------

HELDOUT_CATEGORIES = ("literature", "science", "wisdom")
EXCLUDED_CATEGORIES = ("ascii-art", "translate-me")


def read_text(path, errors="strict"):
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", errors=errors)


def stable_hash(s):
    return int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest()[:8], "big")


def clean_fortune(s, reflow):
    s = re.sub(".\x08", "", s)                     # overstrike (x BACKSPACE y)
    s = s.replace("\t", " ").replace("\r", "")
    s = "".join(c for c in s if c == "\n" or unicodedata.category(c)[0] != "C")
    lines = [ln.rstrip() for ln in s.split("\n")]
    s = "\n".join(lines).strip("\n")
    s = re.sub(r"(?<=\S) {2,}(?=\S)", " ", s)      # one space between words and sentences
    s = re.sub(r"\n{3,}", "\n\n", s)
    if reflow:                                      # join hard-wrapped lines into paragraphs
        s = re.sub(r"(?<=\S)\n(?=\S)", " ", s)
    return s.strip()


def read_fortunes(path):
    raw = read_text(path, errors="replace")
    return [f for f in re.split(r"\n%\n", "\n" + raw + "\n") if f.strip()]


def prepare(args):
    fdir = args.fortunes
    os.makedirs(args.data, exist_ok=True)
    cats = sorted(f for f in os.listdir(fdir)
                  if not f.endswith(".dat") and not f.endswith(".u8")
                  and os.path.isfile(os.path.join(fdir, f)) and not os.path.islink(os.path.join(fdir, f)))
    train, held = [], []
    seen = set()
    for cat in cats:
        if cat in EXCLUDED_CATEGORIES:
            continue
        for k, f in enumerate(read_fortunes(os.path.join(fdir, cat))):
            reflow = stable_hash("%s/%d" % (cat, k)) % 2 == 0
            s = clean_fortune(f, reflow)
            letters = sum(1 for c in s if c.isalpha())
            if len(s) < 20 or letters < 0.6 * sum(1 for c in s if not c.isspace()):
                continue  # too short, or pictures made of characters
            norm = " ".join(s.split()).lower()
            if norm in seen:
                continue
            seen.add(norm)
            (held if cat in HELDOUT_CATEGORIES else train).append(s)
    rng = random.Random(1234)
    rng.shuffle(train)
    rng.shuffle(held)
    with open(os.path.join(args.data, "train.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(train) + "\n")
    with open(os.path.join(args.data, "heldout.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(held) + "\n")
    print("prepare: %d training fortunes (%d chars), %d held-out fortunes (%d chars) from %s"
          % (len(train), sum(map(len, train)), len(held), sum(map(len, held)), ", ".join(HELDOUT_CATEGORIES)))

    # KEY words
    words = []
    for w in read_text(args.words, errors="replace").split("\n"):
        w = w.strip()
        if w.isascii() and w.isalpha() and w.islower() and 2 <= len(w) <= 12:
            words.append(w)
    words = sorted(set(words))
    freq = Counter(re.findall(r"[a-z]+", ("\n".join(train) + "\n" + "\n".join(held)).lower()))
    if os.path.exists(args.keys) and not args.regenerate_keys:
        heldout_keys = [w.strip() for w in read_text(args.keys).split("\n") if w.strip()]
        print("prepare: using the existing held-out KEY list %s (%d words)" % (args.keys, len(heldout_keys)))
    else:
        cand = [w for w in words if 4 <= len(w) <= 10 and freq[w] >= 5]
        cand.sort(key=lambda w: (stable_hash("niah-key:" + w), w))
        heldout_keys = sorted(cand[:args.n_keys])
        with open(args.keys, "w", encoding="utf-8") as fh:
            fh.write("\n".join(heldout_keys) + "\n")
        print("prepare: wrote %d held-out KEY words to %s (from %d common candidates)"
              % (len(heldout_keys), args.keys, len(cand)))
    hk = set(heldout_keys)
    train_keys = [w for w in words if w not in hk]
    with open(os.path.join(args.data, "keys_train.txt"), "w", encoding="utf-8") as fh:
        for w in train_keys:
            fh.write("%s %d\n" % (w, freq[w]))
    print("prepare: %d training KEY words (%d common)" % (len(train_keys), sum(1 for w in train_keys if freq[w] >= 5)))


def read_train_keys(path):
    words, common = [], []
    for line in read_text(path).split("\n"):
        parts = line.split()
        if not parts:
            continue
        words.append(parts[0])
        if len(parts) > 1 and int(parts[1]) >= 5:
            common.append(parts[0])
    return KeySource(words, common)


def read_heldout_keys(path):
    return KeySource([w.strip() for w in read_text(path).split("\n") if w.strip()])


CACHE_VERSION = 1


def load_data(data_dir, vocab_size=2048, log=print, use_cache=True):
    """Tokenizer (trained on train.txt) and the train/held-out corpora, cached in data_dir."""
    tr_path = os.path.join(data_dir, "train.txt")
    ho_path = os.path.join(data_dir, "heldout.txt")
    tr_text = read_text(tr_path)
    ho_text = read_text(ho_path)
    h = hashlib.sha256()
    h.update(("v%d-%d-" % (CACHE_VERSION, vocab_size)).encode())
    h.update(tr_text.encode("utf-8"))
    h.update(ho_text.encode("utf-8"))
    import inspect
    for obj in (char_class, pretokenize_scan, pretokenize, bytes_to_unicode, word_symbols, Tokenizer, train_bpe,
                count_pretokens, split_segments, Corpus):
        h.update(inspect.getsource(obj).encode("utf-8"))
    h.update(_ASCII_RE.pattern.encode("utf-8"))
    digest = h.hexdigest()[:16]
    cache = os.path.join(data_dir, "cache-%s.pkl" % digest)
    t0 = time.time()
    if use_cache and os.path.exists(cache):
        try:
            with open(cache, "rb") as fh:
                d = pickle.load(fh)
            tok = Tokenizer.from_merge_strings(d["merges"])
            train = Corpus.__new__(Corpus)
            held = Corpus.__new__(Corpus)
            for c, key in ((train, "train"), (held, "heldout")):
                c.tok = tok
                c.name = key
                c.texts = d[key + "_texts"]
                c.toks = d[key + "_toks"]
                c.n_tokens = sum(len(t) for t in c.toks)
                c._first = {}
                c.find_starts()
            log("data: loaded cache %s in %.1f s" % (os.path.basename(cache), time.time() - t0))
            return tok, train, held
        except Exception as e:  # a broken cache is rebuilt
            log("data: cache unreadable (%s); rebuilding" % e)
    counts = count_pretokens(tr_text)
    log("data: %d distinct pre-tokens in %d chars (%.1f s)" % (len(counts), len(tr_text), time.time() - t0))
    tok = train_bpe(counts, vocab_size, log=log)
    t1 = time.time()
    train = Corpus(tok, tr_text, "train")
    held = Corpus(tok, ho_text, "heldout")
    log("data: train %d segments / %d tokens (%.3f tokens/char), heldout %d tokens; tokenized in %.1f s"
        % (len(train.texts), train.n_tokens, train.n_tokens / max(1, len(tr_text)), held.n_tokens, time.time() - t1))
    if use_cache:
        for f in os.listdir(data_dir):
            if f.startswith("cache-") and f.endswith(".pkl"):
                try:
                    os.remove(os.path.join(data_dir, f))
                except OSError:
                    pass
        tmp = cache + ".tmp"
        with open(tmp, "wb") as fh:
            pickle.dump({"merges": tok.merge_strings(), "train_texts": train.texts, "train_toks": train.toks,
                         "heldout_texts": held.texts, "heldout_toks": held.toks},
                        fh, protocol=4)
        os.replace(tmp, cache)
    return tok, train, held


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="build train.txt, heldout.txt, keys_train.txt and the held-out KEY list")
    p.add_argument("--fortunes", default="/usr/share/games/fortunes")
    p.add_argument("--words", default="/usr/share/dict/american-english")
    p.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".data"))
    p.add_argument("--keys", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "niah-keys.txt"))
    p.add_argument("--n-keys", type=int, default=400)
    p.add_argument("--regenerate-keys", action="store_true")
    c = sub.add_parser("cache", help="train the tokenizer and tokenize the corpora into the data cache")
    c.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".data"))
    c.add_argument("--vocab", type=int, default=2048)
    s = sub.add_parser("show", help="print a sample prompt")
    s.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".data"))
    s.add_argument("--len", type=int, default=256)
    s.add_argument("--depth", type=float, default=0.5)
    s.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a)
    elif a.cmd == "cache":
        load_data(a.data, a.vocab)
    elif a.cmd == "show":
        tok, train, held = load_data(a.data)
        rng = random.Random(a.seed)
        keys = read_train_keys(os.path.join(a.data, "keys_train.txt"))
        p = build_prompt(train, a.len, make_key(rng, keys.words, keys.common), make_value(rng), a.depth, rng,
                         with_text=True)
        print(repr(p.text))
        print("tokens:", len(p.tokens), "depth:", round(p.depth, 3), "answer:", [tok.tokens[i] for i in p.answer])


if __name__ == "__main__":
    main()
