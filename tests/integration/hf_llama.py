#!/usr/bin/env python3
"""Hugging Face LlamaForCausalLM files for the Llama interop test, written
and read in numpy, with an independent forward pass.

  hf_llama.py make DIR SEED L NH NKV C F V TIED LLAMA3 MAXT DTYPE SHARDS
      a random Llama in Hugging Face layout: config.json, and the weights in
      DTYPE (f32 or bf16) as model.safetensors, or with SHARDS > 1 as
      model-0000i-of-0000n.safetensors + model.safetensors.index.json.
      TIED 1 ties lm_head to the embedding (no lm_head.weight), LLAMA3 1
      adds Llama 3 RoPE scaling over an original context of 16.
  hf_llama.py forward DIR TOKENS.txt CTRAIN_LOGITS.bin ATOL
      ctrain's (T, V) fp32 logits of each line of TOKENS.txt (as `ctrain
      export --dump-logits` writes them) against the numpy forward over DIR;
      also prints the mean next-token loss of each line.
  hf_llama.py same DIR_A DIR_B
      the two directories hold the same tensors (names, shapes and values,
      compared in fp32), whatever their dtype or sharding.
  hf_llama.py check DIR
      the safetensors library opens every weights file in DIR and finds the
      tensors config.json implies (values too, for F32 files).
  hf_llama.py valloss DIR SHARD T N WANT RTOL
      the mean loss of the numpy forward over the first N windows of T + 1
      tokens at stride T of the llm.c shard SHARD (as ctrain's validation
      reads them) equals WANT within RTOL relative.

The forward follows transformers' LlamaForCausalLM: RMSNorm in fp32 units
(x * rsqrt(mean(x^2) + eps) * w), rotate-half RoPE with inv_freq computed in
fp32 as LlamaRotaryEmbedding does (and _compute_llama3_parameters), grouped-
query attention (key/value head h // (NH / NKV)), SwiGLU MLP, tied or untied
head. It computes in float64 after the fp32 RoPE table. The files are
written and read here directly (a JSON header, then raw little-endian
data), because numpy has no bfloat16; `check` uses the safetensors library.
"""
import json
import os
import struct
import sys

import numpy as np


# ---- safetensors by hand -----------------------------------------------------------

def bf16_bits(a):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def write_safetensors(path, tensors, dtype):
    hdr, blobs, off = {}, [], 0
    for name, a in tensors:
        raw = bf16_bits(a).tobytes() if dtype == "bf16" else np.ascontiguousarray(a, np.float32).tobytes()
        hdr[name] = {"dtype": "BF16" if dtype == "bf16" else "F32", "shape": list(a.shape),
                     "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hdr["__metadata__"] = {"format": "pt"}
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return off


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        lo, hi = e["data_offsets"]
        raw = b[8 + n + lo:8 + n + hi]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, dtype=np.float32)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        else:
            raise ValueError(f"{path}: {name}: dtype {e['dtype']}")
        out[name] = a.reshape(e["shape"])
    return out


def weight_files(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        return sorted(set(json.load(open(idx))["weight_map"].values()))
    return ["model.safetensors"]


def load(d):
    p = {}
    for f in weight_files(d):
        p.update(read_safetensors(os.path.join(d, f)))
    return p


# ---- a random model ------------------------------------------------------------------

def make(d, seed, L, NH, NKV, C, F, V, tied, llama3, maxT, dtype, shards):
    rng = np.random.default_rng(seed)
    HS, KV = C // NH, (C // NH) * NKV
    mat = lambda r, k, s=0.08: (s * rng.standard_normal((r, k))).astype(np.float32)
    vec = lambda n: (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)
    t = [("model.embed_tokens.weight", mat(V, C, 0.5))]
    for l in range(L):
        pre = f"model.layers.{l}."
        t += [(pre + "input_layernorm.weight", vec(C)),
              (pre + "self_attn.q_proj.weight", mat(C, C, 0.2)),
              (pre + "self_attn.k_proj.weight", mat(KV, C, 0.2)),
              (pre + "self_attn.v_proj.weight", mat(KV, C)),
              (pre + "self_attn.o_proj.weight", mat(C, C)),
              (pre + "post_attention_layernorm.weight", vec(C)),
              (pre + "mlp.gate_proj.weight", mat(F, C)),
              (pre + "mlp.up_proj.weight", mat(F, C)),
              (pre + "mlp.down_proj.weight", mat(C, F))]
    t += [("model.norm.weight", vec(C))]
    if not tied:
        t += [("lm_head.weight", mat(V, C, 0.3))]
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V,
           "hidden_size": C, "intermediate_size": F, "num_hidden_layers": L,
           "num_attention_heads": NH, "num_key_value_heads": NKV, "max_position_embeddings": maxT,
           "hidden_act": "silu", "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
           "rope_scaling": None, "attention_bias": False, "mlp_bias": False,
           "tie_word_embeddings": bool(tied), "torch_dtype": "bfloat16" if dtype == "bf16" else "float32"}
    if llama3:
        cfg["rope_theta"] = 500000.0
        cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                               "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    if shards <= 1:
        write_safetensors(os.path.join(d, "model.safetensors"), t, dtype)
        return
    per = -(-len(t) // shards)
    wmap, total = {}, 0
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = t[s * per:(s + 1) * per]
        total += write_safetensors(os.path.join(d, name), part, dtype)
        wmap.update({k: name for k, _ in part})
    json.dump({"metadata": {"total_size": total}, "weight_map": wmap},
              open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=2)


# ---- the forward pass --------------------------------------------------------------

def inv_freq(cfg, HS):
    f32 = np.float32
    inv = (f32(1.0) / (f32(cfg.get("rope_theta", 10000.0)) **
                       (np.arange(0, HS, 2, dtype=np.int64).astype(f32) / f32(HS)))).astype(f32)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = f32(rs["factor"]), f32(rs["low_freq_factor"]), f32(rs["high_freq_factor"])
        old = f32(rs["original_max_position_embeddings"])
        low_wl, high_wl = old / lo, old / hi
        wl = f32(2 * np.pi) / inv
        scaled = np.where(wl > low_wl, inv / factor, inv).astype(f32)
        smooth = ((old / wl - lo) / (hi - lo)).astype(f32)
        smoothed = ((f32(1) - smooth) * scaled / factor + smooth * scaled).astype(f32)
        medium = ~(wl < high_wl) & ~(wl > low_wl)
        inv = np.where(medium, smoothed, scaled).astype(f32)
    return inv


def rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def forward(p, cfg, ids):
    C, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    NKV = cfg.get("num_key_value_heads", NH)
    HS, G, eps, T = C // NH, NH // NKV, cfg.get("rms_norm_eps", 1e-6), len(ids)
    g = lambda k: p[k].astype(np.float64)
    ang = (np.arange(T, dtype=np.float32)[:, None] * inv_freq(cfg, HS)[None, :]).astype(np.float32)
    cos = np.cos(ang.astype(np.float64)).astype(np.float32).astype(np.float64)
    sin = np.sin(ang.astype(np.float64)).astype(np.float32).astype(np.float64)
    cos, sin = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)  # (T, HS)

    def rope(x):  # (heads, T, HS)
        h = HS // 2
        rot = np.concatenate([-x[..., h:], x[..., :h]], -1)
        return x * cos + rot * sin

    x = g("model.embed_tokens.weight")[ids]
    mask = np.tril(np.ones((T, T), dtype=bool))
    for l in range(L):
        pre = f"model.layers.{l}."
        a = rmsnorm(x, g(pre + "input_layernorm.weight"), eps)
        q = (a @ g(pre + "self_attn.q_proj.weight").T).reshape(T, NH, HS).transpose(1, 0, 2)
        k = (a @ g(pre + "self_attn.k_proj.weight").T).reshape(T, NKV, HS).transpose(1, 0, 2)
        v = (a @ g(pre + "self_attn.v_proj.weight").T).reshape(T, NKV, HS).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        k, v = np.repeat(k, G, axis=0), np.repeat(v, G, axis=0)  # head h reads h // G
        att = q @ k.transpose(0, 2, 1) / np.sqrt(HS)
        att = np.where(mask, att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(T, C)
        x = x + y @ g(pre + "self_attn.o_proj.weight").T
        a = rmsnorm(x, g(pre + "post_attention_layernorm.weight"), eps)
        gate, up = a @ g(pre + "mlp.gate_proj.weight").T, a @ g(pre + "mlp.up_proj.weight").T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ g(pre + "mlp.down_proj.weight").T
    x = rmsnorm(x, g("model.norm.weight"), eps)
    head = g("model.embed_tokens.weight") if cfg.get("tie_word_embeddings") else g("lm_head.weight")
    return x @ head.T


def cmd_forward(d, tokens_path, logits_path, atol):
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["model_type"] == "llama", cfg
    p = load(d)
    V = cfg["vocab_size"]
    got = np.fromfile(logits_path, dtype=np.float32)
    seqs = [[int(t) for t in line.split()] for line in open(tokens_path) if line.split()]
    if got.size != sum(len(s) for s in seqs) * V:
        print(f"ctrain logits hold {got.size} floats, want {sum(len(s) for s in seqs) * V}")
        return 1
    off, worst = 0, 0.0
    for s in seqs:
        ref = forward(p, cfg, np.array(s))
        ours = got[off:off + len(s) * V].reshape(len(s), V)
        off += len(s) * V
        d_ = float(np.abs(ref - ours).max())
        lse = np.log(np.exp(ref - ref.max(-1, keepdims=True)).sum(-1)) + ref.max(-1)
        loss = float(np.mean(lse[:-1] - ref[np.arange(len(s) - 1), s[1:]])) if len(s) > 1 else 0.0
        print(f"T={len(s):3d}: max |numpy - ctrain| = {d_:.3g}, logit range "
              f"[{ref.min():.3g}, {ref.max():.3g}], next-token loss {loss:.5f}")
        worst = max(worst, d_)
    print(f"worst {worst:.3g} (tolerance {atol:g})")
    return 0 if worst <= atol else 1


def cmd_same(a, b):
    pa, pb = load(a), load(b)
    if sorted(pa) != sorted(pb):
        print(f"different tensors: {sorted(set(pa) ^ set(pb))[:5]}")
        return 1
    for k in pa:
        if pa[k].shape != pb[k].shape or not np.array_equal(pa[k], pb[k]):
            print(f"{k} differs: {pa[k].shape} vs {pb[k].shape}, "
                  f"max |diff| {float(np.abs(pa[k] - pb[k]).max()) if pa[k].shape == pb[k].shape else 'n/a'}")
            return 1
    print(f"{len(pa)} tensors equal")
    return 0


def cmd_check(d):
    from safetensors import safe_open
    from safetensors.numpy import load_file
    cfg = json.load(open(os.path.join(d, "config.json")))
    names = set()
    for f in weight_files(d):
        path = os.path.join(d, f)
        with safe_open(path, framework="numpy") as sf:
            names |= set(sf.keys())
        mine = read_safetensors(path)
        raw = open(path, "rb").read()
        hdr = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
        if all(e["dtype"] == "F32" for k, e in hdr.items() if k != "__metadata__"):
            lib = load_file(path)  # numpy has no bfloat16: values of F32 files only
            for k, v in lib.items():
                assert np.array_equal(v, mine[k]), k
    L = cfg["num_hidden_layers"]
    want = {"model.embed_tokens.weight", "model.norm.weight"} | \
        {f"model.layers.{l}.{t}" for l in range(L) for t in (
            "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
            "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
            "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight")}
    if not cfg["tie_word_embeddings"]:
        want.add("lm_head.weight")
    if names != want:
        print(f"tensors differ from config.json's: {sorted(names ^ want)[:5]}")
        return 1
    print(f"the safetensors library reads {len(names)} tensors in {len(weight_files(d))} file(s)")
    return 0


def cmd_valloss(d, shard, T, n, want, rtol):
    cfg = json.load(open(os.path.join(d, "config.json")))
    p = load(d)
    raw = open(shard, "rb").read()
    h = np.frombuffer(raw[:1024], dtype=np.int32)
    toks = np.frombuffer(raw[1024:], dtype=np.uint16 if h[1] == 1 else np.uint32)[:h[2]]
    total = 0.0
    for i in range(n):
        w = toks[i * T:i * T + T + 1].astype(np.int64)
        ref = forward(p, cfg, w[:-1])
        lse = np.log(np.exp(ref - ref.max(-1, keepdims=True)).sum(-1)) + ref.max(-1)
        total += float(np.sum(lse - ref[np.arange(T), w[1:]]))
    got = total / (n * T)
    print(f"numpy validation loss over {n} windows of {T}: {got:.7f}, ctrain's {want:.7f}")
    return 0 if abs(got - want) <= rtol * abs(want) else 1


def main():
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "make":
        make(a[0], *map(int, a[1:10]), int(a[10]), a[11], int(a[12]))
        return 0
    if cmd == "forward":
        return cmd_forward(a[0], a[1], a[2], float(a[3]))
    if cmd == "same":
        return cmd_same(a[0], a[1])
    if cmd == "check":
        return cmd_check(a[0])
    if cmd == "valloss":
        return cmd_valloss(a[0], a[1], int(a[2]), int(a[3]), float(a[4]), float(a[5]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
