#!/usr/bin/env python3
"""Checks ctrain's tokenizer.json support against Hugging Face `tokenizers`.

    bpe_hf_reference.py CTRAIN        run the checks (ctest)
    bpe_hf_reference.py --make-fixtures
                                      rewrite tests/data/hf/ (for test_bpe_hf.c)
    bpe_hf_reference.py --bench CTRAIN TEXT
                                      encode throughput against tokenizers

CTRAIN is the ctrain binary. Builds byte-level BPE tokenizer.json files with
the `tokenizers` library itself (nothing is downloaded), trained on the test
corpora, set up the way these models ship them:

- llama3: Split(Llama 3's regex) + ByteLevel(use_regex=false),
  ignore_merges, <|begin_of_text|> put first by the post-processor, 256
  special tokens after the vocabulary, and whole words in the vocabulary
  that no merge makes (which only ignore_merges reaches);
- gpt2: ByteLevel(use_regex=true), <|endoftext|>, merges as "a b" strings;
- qwen2: NFC, Split(Qwen2's regex, one digit at a time) + ByteLevel,
  <|endoftext|> <|im_start|> <|im_end|>, an added token matched in its
  normalized form;
- smollm2: Digits(individual_digits) + ByteLevel(use_regex=true);
- gpt4o: the o200k regex (\\p{Lu} \\p{Ll} \\p{M} ..., case-insensitive
  suffixes);
- deepseek3: three Splits in a row (digits, CJK ranges, \\p{P} \\p{S}), a
  BOS of non-ASCII characters;
- exotic: every split behavior, invert, a String pattern, empty regex
  matches, add_prefix_space, added tokens with lstrip/rstrip.

On mixed text (English, code, many scripts, combining marks, emoji, numbers,
contractions, whitespace runs, special tokens spelled in the text) and on
the King James Bible when the demo data is there, ctrain's ids from
`ctrain tokenize encode` must equal tokenizers' encode(text).ids exactly,
and `ctrain tokenize decode` must give tokenizers' decode (and the text
itself where the tokenizer keeps it). Then files ctrain must refuse with
the file and the key: Unigram and WordPiece models, malformed JSON, a regex
outside the supported subset, an unsupported pre-tokenizer and normalizer.

Needs: pip install tokenizers (exits 77, skipped, without it).
"""
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bpe_gpt2_reference as g2  # noqa: E402 (make_docs, the text pools)

LLAMA3_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
              r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
O200K_PAT = "|".join([
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"\p{N}{1,3}", r" ?[^\s\p{L}\p{N}]+[\r\n/]*", r"\s*[\r\n]+", r"\s+(?!\S)", r"\s+"])
# DeepSeek-V3: three Splits in a row, CJK ranges, punctuation and symbols.
DEEPSEEK_PATS = [r"\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
                 r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                 r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]
FAILURES = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


# ---- building tokenizers with the library -------------------------------------------------

def train(pre_tokenizer, texts, vocab_size, normalizer=None, ignore_merges=False):
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, tr)
    return tok


def edit_json(tok, fn):
    """Applies fn to the tokenizer's JSON and loads the result."""
    from tokenizers import Tokenizer
    d = json.loads(tok.to_str())
    fn(d)
    return Tokenizer.from_str(json.dumps(d))


def add_whole_words(words):
    """Puts words (in the byte alphabet) into model.vocab without merges."""
    def fn(d):
        vocab = d["model"]["vocab"]
        for w in words:
            if w not in vocab:
                vocab[w] = len(vocab)
    return fn


def byte_alphabet_inverse():
    """GPT-2's bytes_to_unicode(), inverted: character -> byte."""
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + len(cs) - 188)
    return {chr(c): b for b, c in zip(bs, cs)}


def to_alphabet(s):
    from tokenizers import pre_tokenizers
    pt = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    return "".join(p for p, _ in pt.pre_tokenize_str(s))


def build_all(texts):
    from tokenizers import AddedToken, Regex, normalizers, pre_tokenizers as P, processors
    toks = {}

    # Llama 3: regex split, ignore_merges, whole words outside the merges,
    # 256 special tokens after the vocabulary, BOS first.
    t = train(P.Sequence([P.Split(Regex(LLAMA3_PAT), "isolated"),
                          P.ByteLevel(add_prefix_space=False, use_regex=False)]),
              texts, 1500, ignore_merges=True)
    t = edit_json(t, add_whole_words([to_alphabet(w) for w in
                                      (" Jehoshaphat", " beginning", "zzyzx", " unto",
                                       " hallelujah", "123")]))
    specials = ["<|begin_of_text|>", "<|end_of_text|>"] + \
        ["<|reserved_special_token_%d|>" % i for i in range(254)]
    t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos = t.token_to_id("<|begin_of_text|>")
    t.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    toks["llama3"] = (t, bos)

    # GPT-2: ByteLevel's own regex, <|endoftext|>, "a b" merges.
    t = train(P.ByteLevel(add_prefix_space=False, use_regex=True), texts, 1200)
    t.add_special_tokens(["<|endoftext|>"])
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    gpt2_pairs = t
    t = edit_json(t, lambda d: d["model"].__setitem__(
        "merges", [" ".join(m) for m in d["model"]["merges"]]))
    toks["gpt2"] = (t, t.token_to_id("<|endoftext|>"))

    # Qwen2: NFC, single digits, chat tokens, a token matched after NFC.
    t = train(P.Sequence([P.Split(Regex(QWEN2_PAT), "isolated"),
                          P.ByteLevel(add_prefix_space=False, use_regex=False)]),
              texts, 1300, normalizer=normalizers.NFC())
    t.add_special_tokens([AddedToken(s, special=True, normalized=False)
                          for s in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    t.add_tokens([AddedToken("cafe\u0301 au lait", normalized=True)])
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    toks["qwen2"] = (t, t.token_to_id("<|endoftext|>"))

    # SmolLM2 / StarCoder: Digits, then GPT-2's regex; <|endoftext|> is id 0.
    from tokenizers import Tokenizer, models, decoders, trainers
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = P.Sequence([P.Digits(individual_digits=True),
                                  P.ByteLevel(add_prefix_space=False, use_regex=True)])
    t.decoder = decoders.ByteLevel()
    t.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1200, show_progress=False, initial_alphabet=P.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    toks["smollm2"] = (t, 0)

    # GPT-4o's pattern: letter cases, marks, case-insensitive suffixes.
    t = train(P.Sequence([P.Split(Regex(O200K_PAT), "isolated"),
                          P.ByteLevel(add_prefix_space=False, use_regex=False)]), texts, 1200)
    t.add_special_tokens(["<|endoftext|>"])
    toks["gpt4o"] = (t, t.token_to_id("<|endoftext|>"))

    t = train(P.Sequence([P.Split(Regex(p), "isolated") for p in DEEPSEEK_PATS] +
                         [P.ByteLevel(add_prefix_space=False, use_regex=False)]), texts, 1200)
    t.add_special_tokens(["<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<\uff5cend\u2581of\u2581sentence\uff5c>"])
    bos = t.token_to_id("<\uff5cbegin\u2581of\u2581sentence\uff5c>")
    t.post_processor = processors.TemplateProcessing(
        single="<\uff5cbegin\u2581of\u2581sentence\uff5c> $A",
        special_tokens=[("<\uff5cbegin\u2581of\u2581sentence\uff5c>", bos)])
    toks["deepseek3"] = (t, bos)

    # Every split behavior, invert, a String pattern, empty matches, prefix
    # spaces, added tokens that swallow whitespace.
    t = train(P.Sequence([
        P.Split("\n", "merged_with_previous"),
        P.Split(Regex(r"[aeiou]+"), "merged_with_previous", invert=True),
        P.Split(Regex(r"\p{P}"), "merged_with_next"),
        P.Split(Regex(r"x*"), "contiguous"),
        P.Split(Regex(r"\t"), "removed"),
        P.Digits(individual_digits=False),
        P.ByteLevel(add_prefix_space=True, use_regex=True)]), texts, 1000)
    t.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False),
                          AddedToken("<sep>", special=True, lstrip=True, rstrip=True,
                                     normalized=False),
                          AddedToken("<left>", special=True, lstrip=True, normalized=False)])
    t.add_tokens([AddedToken("[[wiki]]", rstrip=True, normalized=True)])
    toks["exotic"] = (t, t.token_to_id("<|endoftext|>"))

    # Merges as tokenizers accepts but no trainer writes: a block out of
    # order, a pair given twice (the later rank counts), two merges making
    # one token, and "an" + "a" first of all, before "a" + "n": in "banana"
    # the heap merge (tokenizers') makes "ana" from the first "an" before the
    # second "an" forms, where merging every "an" first would not (or the
    # same with "at", "in", ... whichever the vocabulary has).
    def disorder(d):
        m, vocab = d["model"]["merges"], d["model"]["vocab"]
        m[200:500] = m[200:500][::-1]
        m.append(m[10])
        for a, b in m[:400]:
            if len(b) > 1 and a + b[0] in vocab and [a + b[0], b[1:]] not in m:
                m.append([a + b[0], b[1:]])  # "x" + "yz" and "xy" + "z" make "xyz"
                break
        pq = next(x for x in ("an", "at", "in", "er", "en", "on", "re") if x in vocab)
        vocab.setdefault(pq + pq[0], len(vocab))
        m.insert(0, [pq, pq[0]])
    t = edit_json(gpt2_pairs, disorder)
    toks["disordered"] = (t, t.token_to_id("<|endoftext|>"))
    return toks


# ---- the checks -----------------------------------------------------------------------------

SPECIAL_TEXT = [
    "<|begin_of_text|>Hello<|end_of_text|>", "a <|reserved_special_token_7|> b",
    "<|im_start|>user\nhi<|im_end|>\n", "<|endoftext|><|endoftext|>", "x<|endoftext|>y",
    "caf\u00e9 au lait", "cafe\u0301 au lait!", "  <sep>  two  <sep>", "end <left>  x",
    "see [[wiki]]   then", "<|begin_of_text", "<sep", "<|reserved_special_token_300|>",
    "Jehoshaphat beginning unto hallelujah zzyzx 123 1234", " Jehoshaphat's",
    "banana ananas Canaan bananas", "batata atatat", "inini ininin", "erere", "enene", "ononon",
    "rerere",
]


def corpora(work):
    rng = random.Random(7)
    docs = g2.make_docs(11, 60, 2500)
    for i in range(len(docs)):
        if rng.random() < 0.5:
            docs[i] += rng.choice(SPECIAL_TEXT) + rng.choice(["", " ", "\n"]) + rng.choice(docs)[:200]
    docs += SPECIAL_TEXT
    out = {"mixed": docs}
    kjv = os.path.join(HERE, "..", "..", "datasets", "kjv", "kjv.txt")
    if os.path.isfile(kjv):
        with open(kjv, encoding="utf-8") as f:
            chapters = f.read().split("\f\n")
        out["kjv"] = chapters[::40]  # every 40th chapter: ~30 of 1189
    else:
        print("note: datasets/kjv/kjv.txt is missing (make demo-data); mixed text only")
    return out


def lossless(name):
    return name not in ("qwen2", "exotic")  # NFC; Removed and lstrip/rstrip drop text


def check_tokenizer(ctrain, name, tok, eot, docs_by_corpus, work):
    path = os.path.join(work, name + ".json")
    tok.save(path)
    for corpus, docs in docs_by_corpus.items():
        jsonl = os.path.join(work, "%s.jsonl" % corpus)
        prefix = os.path.join(work, "%s_%s" % (name, corpus))
        g2.run(ctrain, ["encode", "--tokenizer", path, "--jsonl", "--out", prefix, jsonl])
        ours, _ = g2.read_shard(prefix + "_train_000000.bin")
        kept = [d for d in docs if d]
        want, starts = [], []
        for d in kept:
            starts.append(len(want))
            want += [eot] + tok.encode(d, add_special_tokens=False).ids
        label = "%s on %s: %d documents, %d tokens" % (name, corpus, len(kept), len(want))
        check(ours == want, label + ": ctrain's ids = tokenizers'")
        if name == "llama3":  # the check must see ignore_merges at work
            from tokenizers import Tokenizer
            plain = edit_json(tok, lambda d: d["model"].__setitem__("ignore_merges", False))
            n = sum(plain.encode(d, add_special_tokens=False).ids !=
                    tok.encode(d, add_special_tokens=False).ids for d in kept)
            check(n > 0, "%s on %s: ignore_merges changes the ids of %d documents" % (name, corpus, n))
        if ours != want:
            k = next((i for i, (a, b) in enumerate(zip(ours, want)) if a != b), min(len(ours), len(want)))
            doc = max(i for i, s in enumerate(starts) if s <= k)
            print("      first difference at token %d (document %d): ours %s, tokenizers %s"
                  % (k, doc, ours[k:k + 6], want[k:k + 6]))
            print("      document %d starts %r" % (doc, kept[doc][:120]))
            continue
        dec = subprocess.run([ctrain, "tokenize", "decode", "--tokenizer", path,
                              prefix + "_train_000000.bin"], check=True, stdout=subprocess.PIPE).stdout
        ref = "".join(tok.decode([eot], skip_special_tokens=False) +
                      tok.decode(tok.encode(d, add_special_tokens=False).ids, skip_special_tokens=False)
                      for d in kept)
        check(dec == ref.encode("utf-8"), "%s on %s: ctrain's decode = tokenizers' decode" % (name, corpus))
        if lossless(name):
            eot_text = tok.id_to_token(eot)
            check(dec == "".join(eot_text + d for d in kept).encode("utf-8"),
                  "%s on %s: decode(encode(text)) = text" % (name, corpus))


def check_cli(ctrain, toks, work):
    # A model directory with tokenizer.json (and GPT-2 files, which lose to it).
    t, eot = toks["qwen2"]
    d = os.path.join(work, "model_dir")
    os.makedirs(d, exist_ok=True)
    t.save(os.path.join(d, "tokenizer.json"))
    t.model.save(d)  # vocab.json + merges.txt, as Qwen2 ships them too
    text = "<|im_start|>user\nCafe\u0301 12345 it's<|im_end|>"
    src = os.path.join(work, "one.txt")
    with open(src, "w", encoding="utf-8") as f:
        f.write(text)
    prefix = os.path.join(work, "dir")
    g2.run(ctrain, ["encode", "--tokenizer", d, "--out", prefix, src])
    ours, _ = g2.read_shard(prefix + "_train_000000.bin")
    check(ours == [eot] + t.encode(text).ids, "a model directory: its tokenizer.json is used")
    # pretokenize shows the pieces, added tokens among them.
    out = g2.run(ctrain, ["pretokenize", "--tokenizer", d, src]).stdout
    pieces = [json.loads(x) for x in out.decode().splitlines()]
    check(pieces[:4] == ["<|im_start|>", "user", "\n", "Caf\u00e9"] and "1" in pieces and
          "5" in pieces, "pretokenize: Qwen2's pieces (after NFC) of %r: %s" % (text, pieces))
    # Export would lose the pipeline: refused.
    r = subprocess.run([ctrain, "tokenize", "export", "--tokenizer", os.path.join(work, "gpt2.json"),
                        "--format", "gpt2", os.path.join(work, "exp")], stderr=subprocess.PIPE)
    check(r.returncode == 1 and b"keep the tokenizer.json" in r.stderr,
          "export of a tokenizer.json: refused with a hint")


def check_categories(ctrain, work):
    """\\p{X} and \\s as Oniguruma classifies them: for each category, a Split
    that removes it from every 17th code point (all of them below U+3000).
    (Checked once on every code point and all 37 names: the same.)"""
    from tokenizers import Tokenizer
    text = "".join(chr(c) for c in range(0x20, 0x110000)
                   if not 0xD800 <= c <= 0xDFFF and (c < 0x3000 or c % 17 == 0))
    src = os.path.join(work, "codepoints.txt")
    with open(src, "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(HERE, "hf", "llama3.json"), encoding="utf-8") as f:
        base = json.load(f)
    inv = byte_alphabet_inverse()
    bad = []
    cats = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pd", "Po", "Sm", "So",
            "Zs", "Cf", "Co", "Cn"]
    for c in cats + ["P", "S", "WS"]:
        base["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"\s" if c == "WS" else r"\p{%s}" % c},
             "behavior": "Removed", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        path = os.path.join(work, "cat.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(base, f)
        t = Tokenizer.from_file(path)
        ref = b"".join(bytes(inv[ch] for ch in p) for p, _ in t.pre_tokenizer.pre_tokenize_str(text))
        out = g2.run(ctrain, ["pretokenize", "--tokenizer", path, src]).stdout.decode("utf-8")
        ours = "".join(json.loads(x) for x in out.split("\n") if x).encode("utf-8")
        if ours != ref:
            bad.append(c)
    check(not bad, "\\p{X} for %d general categories, P, S and \\s, on %d code "
          "points = Oniguruma's (differ: %s)" % (len(cats), len(text), " ".join(bad) or "none"))


def expect_error(ctrain, path, words, what, work):
    src = os.path.join(work, "one.txt")
    r = subprocess.run([ctrain, "tokenize", "encode", "--tokenizer", path, "--out",
                        os.path.join(work, "bad"), src], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = r.stderr.decode("utf-8", "replace")
    ok = r.returncode == 1 and path in err and all(w in err for w in words) and "HINT" in err
    check(ok, "%s: refused, naming the file and %s" % (what, ", ".join(words)))
    if not ok:
        print("      rc %d, stderr: %s" % (r.returncode, err.strip()[-400:]))


def check_bad(ctrain, toks, work):
    from tokenizers import Tokenizer, Regex, models, normalizers, pre_tokenizers as P
    bad = os.path.join(work, "bad")
    os.makedirs(bad, exist_ok=True)

    def save(name, tok=None, text=None):
        p = os.path.join(bad, name)
        if tok is not None:
            tok.save(p)
        else:
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)
        return p

    uni = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0)], 0))
    expect_error(ctrain, save("unigram.json", uni), ["model.type", "Unigram"], "a Unigram model", work)
    wp = Tokenizer(models.WordPiece({"[UNK]": 0, "a": 1, "##b": 2}, unk_token="[UNK]"))
    expect_error(ctrain, save("wordpiece.json", wp), ["model.type", "WordPiece"], "a WordPiece model", work)
    good = toks["gpt2"][0].to_str()
    expect_error(ctrain, save("truncated.json", text=good[:len(good) // 2]), [":"],
                 "malformed JSON (cut in half)", work)
    expect_error(ctrain, save("comma.json", text=good.replace('"version": "1.0",', '"version": "1.0",,')
                              if '"version": "1.0",' in good else good.replace(",", ",,", 1)),
                 [":1:"], "malformed JSON (a stray comma)", work)
    t = Tokenizer.from_str(good)
    t.pre_tokenizer = P.Sequence([P.Split(Regex(r"(?<=a)b|\s+"), "isolated"),
                                  P.ByteLevel(add_prefix_space=False, use_regex=False)])
    expect_error(ctrain, save("lookbehind.json", t),
                 ["pre_tokenizer.pretokenizers[0].pattern.Regex", "lookbehind"],
                 "a regex with a lookbehind", work)
    t.pre_tokenizer = P.Sequence([P.Split(Regex(r"\w+|\W"), "isolated"),
                                  P.ByteLevel(add_prefix_space=False, use_regex=False)])
    expect_error(ctrain, save("word_escape.json", t),
                 ["pre_tokenizer.pretokenizers[0].pattern.Regex", "\\w"], "a regex with \\w", work)
    t.pre_tokenizer = P.Sequence([P.Whitespace(), P.ByteLevel(add_prefix_space=False)])
    expect_error(ctrain, save("whitespace.json", t),
                 ["pre_tokenizer.pretokenizers[0].type", "Whitespace"], "a Whitespace pre-tokenizer", work)
    t.pre_tokenizer = P.Split(Regex(r"\s+"), "isolated")
    expect_error(ctrain, save("no_bytelevel.json", t), ["pre_tokenizer", "ByteLevel"],
                 "no ByteLevel pre-tokenizer", work)
    t = Tokenizer.from_str(good)
    t.normalizer = normalizers.NFKC()
    expect_error(ctrain, save("nfkc.json", t), ["normalizer.type", "NFKC"], "an NFKC normalizer", work)

    def drop_byte(d):  # the space byte's token renamed; the merges that use it dropped
        vocab = d["model"]["vocab"]
        vocab["<no space>"] = vocab.pop("\u0120")
        d["model"]["merges"] = [m for m in d["model"]["merges"] if "\u0120" not in m]
    expect_error(ctrain, save("no_space.json", text=json.dumps(_edit(good, drop_byte))),
                 ["model.vocab", "0x20"], "a vocabulary without the space byte", work)


def _edit(text, fn):
    d = json.loads(text)
    fn(d)
    return d


def main_checks(ctrain):
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        print("skipped: the tokenizers package is missing (pip install tokenizers)")
        return 77
    base = os.environ.get("CT_TEST_TMP", "/tmp")
    work = os.path.join(base, "bpe_hf_reference.%d" % os.getpid())
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    t0 = time.time()
    docs_by_corpus = corpora(work)
    for corpus, docs in docs_by_corpus.items():
        g2.write_jsonl(os.path.join(work, "%s.jsonl" % corpus), docs)
    train_texts = g2.make_docs(12, 80, 2500) + docs_by_corpus.get("kjv", [])[:10]
    toks = build_all(train_texts)
    print("built %d tokenizers in %.1f s" % (len(toks), time.time() - t0))
    for name, (tok, eot) in toks.items():
        check_tokenizer(ctrain, name, tok, eot, docs_by_corpus, work)
    check_cli(ctrain, toks, work)
    check_categories(ctrain, work)
    check_bad(ctrain, toks, work)
    if not FAILURES:
        shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(FAILURES) if FAILURES else "all checks passed (%.1f s)" % (time.time() - t0))
    return 1 if FAILURES else 0


def bench(ctrain, text_path):
    """Encode throughput of ctrain and tokenizers (one thread) on one text."""
    from tokenizers import pre_tokenizers as P, Regex
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    mb = len(text.encode("utf-8")) / 1e6
    work = "/tmp/bpe_hf_bench.%d" % os.getpid()
    os.makedirs(work, exist_ok=True)
    chapters = text.split("\f\n")
    setups = {
        "llama3": P.Sequence([P.Split(Regex(LLAMA3_PAT), "isolated"),
                              P.ByteLevel(add_prefix_space=False, use_regex=False)]),
        "gpt2": P.ByteLevel(add_prefix_space=False, use_regex=True),
    }
    for name, pt in setups.items():
        tok = train(pt, chapters, 8000, ignore_merges=name == "llama3")
        tok.add_special_tokens(["<|endoftext|>"])
        path = os.path.join(work, name + ".json")
        tok.save(path)
        t = time.process_time()
        for c in chapters:
            tok.encode(c, add_special_tokens=False)
        hf = time.process_time() - t
        t = time.time()
        tok.encode_batch(chapters, add_special_tokens=False)
        hf_batch = time.time() - t
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.run([ctrain, "tokenize", "encode", "--tokenizer", path, "--doc-sep",
                              "\\x0c\\n", "--out", os.path.join(work, name), text_path],
                             check=True, stdout=subprocess.PIPE).stdout.decode()
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        enc = out.split("(")[-1].split(" MB/s")[0] if " MB/s" in out else "?"
        print("%s-style tokenizer.json (vocab 8000), %.1f MB: ctrain %s MB/s encoding (wall "
              "clock), %.1f MB/s for the whole command (CPU time: load, encode, write shards), "
              "one thread; tokenizers %.1f MB/s encode() per chapter (CPU time, one thread), "
              "%.1f MB/s encode_batch() (wall clock, %d cores)"
              % (name, mb, enc, mb / ours, mb / hf, mb / hf_batch, os.cpu_count()))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def make_fixtures():
    """Writes tests/data/hf/: small tokenizer.json files, a text, and the
    ids tokenizers gives it, which tests/data/test_bpe_hf.c checks without
    Python."""
    from tokenizers import AddedToken, Regex, normalizers, pre_tokenizers as P, processors
    out = os.path.join(HERE, "hf")
    os.makedirs(out, exist_ok=True)
    texts = g2.make_docs(21, 30, 2000)
    rng = random.Random(3)
    text = "".join(rng.choice(g2.make_docs(22, 8, 600)) + rng.choice(SPECIAL_TEXT) for _ in range(6))
    with open(os.path.join(out, "text.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    toks = {}
    t = train(P.Sequence([P.Split(Regex(LLAMA3_PAT), "isolated"),
                          P.ByteLevel(add_prefix_space=False, use_regex=False)]),
              texts, 420, ignore_merges=True)
    t = edit_json(t, add_whole_words([to_alphabet(w) for w in (" beginning", " hallelujah", "zzyzx")]))
    t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in
                          ["<|begin_of_text|>", "<|end_of_text|>"] +
                          ["<|reserved_special_token_%d|>" % i for i in range(6)]])
    t.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        special_tokens=[("<|begin_of_text|>", t.token_to_id("<|begin_of_text|>"))])
    toks["llama3"] = t
    t = train(P.Sequence([P.Split(Regex(QWEN2_PAT), "isolated"),
                          P.ByteLevel(add_prefix_space=False, use_regex=False)]),
              texts, 400, normalizer=normalizers.NFC())
    t.add_special_tokens([AddedToken(s, special=True, normalized=False)
                          for s in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    t.add_tokens([AddedToken("cafe\u0301 au lait", normalized=True)])
    toks["qwen2"] = t
    t = train(P.Sequence([
        P.Split("\n", "merged_with_previous"),
        P.Split(Regex(r"[aeiou]+"), "merged_with_previous", invert=True),
        P.Split(Regex(r"\p{P}"), "merged_with_next"),
        P.Split(Regex(r"x*"), "contiguous"),
        P.Split(Regex(r"\t"), "removed"),
        P.Digits(individual_digits=False),
        P.ByteLevel(add_prefix_space=True, use_regex=True)]), texts, 380)
    t.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False),
                          AddedToken("<sep>", special=True, lstrip=True, rstrip=True, normalized=False),
                          AddedToken("<left>", special=True, lstrip=True, normalized=False)])
    t.add_tokens([AddedToken("[[wiki]]", rstrip=True, normalized=True)])
    toks["exotic"] = t
    for name, t in toks.items():
        t.save(os.path.join(out, name + ".json"), pretty=False)
        with open(os.path.join(out, name + ".ids"), "w") as f:
            f.write(" ".join(map(str, t.encode(text, add_special_tokens=False).ids)) + "\n")
    print("wrote", out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2 and sys.argv[1] == "--make-fixtures":
        sys.exit(make_fixtures())
    if len(sys.argv) == 4 and sys.argv[1] == "--bench":
        sys.exit(bench(sys.argv[2], sys.argv[3]))
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main_checks(sys.argv[1]))
