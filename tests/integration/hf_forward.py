#!/usr/bin/env python3
"""An independent GPT-2 forward pass in numpy over an exported Hugging Face
model.safetensors, checked against ctrain's logits.

  hf_forward.py HF_DIR TOKENS.txt CTRAIN_LOGITS.bin ATOL

TOKENS.txt holds one sequence of token ids per line; CTRAIN_LOGITS.bin the
(T, V) float32 logits of each sequence in turn, as written by the hidden
`ctrain export --dump-logits`. Follows HF's GPT2LMHeadModel: pre-LN,
LayerNorm eps 1e-5, Conv1D weights stored (in, out), gelu_new (tanh form),
causal softmax attention scaled by 1/sqrt(head size), LM head tied to wte.
Computes in float64. Exit 0 when max |diff| <= ATOL for every sequence.
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file


def layernorm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def forward(p, cfg, ids):
    C, NH, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    HS = C // NH
    T = len(ids)
    g = lambda k: p["transformer." + k].astype(np.float64)
    x = g("wte.weight")[ids] + g("wpe.weight")[:T]
    mask = np.tril(np.ones((T, T), dtype=bool))
    for i in range(L):
        h = f"h.{i}."
        a = layernorm(x, g(h + "ln_1.weight"), g(h + "ln_1.bias"))
        qkv = a @ g(h + "attn.c_attn.weight") + g(h + "attn.c_attn.bias")  # (T, 3C)
        q, k, v = np.split(qkv, 3, axis=-1)
        q, k, v = (t.reshape(T, NH, HS).transpose(1, 0, 2) for t in (q, k, v))
        att = q @ k.transpose(0, 2, 1) / np.sqrt(HS)
        att = np.where(mask, att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(T, C)
        x = x + y @ g(h + "attn.c_proj.weight") + g(h + "attn.c_proj.bias")
        a = layernorm(x, g(h + "ln_2.weight"), g(h + "ln_2.bias"))
        f = gelu_new(a @ g(h + "mlp.c_fc.weight") + g(h + "mlp.c_fc.bias"))
        x = x + f @ g(h + "mlp.c_proj.weight") + g(h + "mlp.c_proj.bias")
    x = layernorm(x, g("ln_f.weight"), g("ln_f.bias"))
    return x @ g("wte.weight").T  # tied head


def main():
    hf_dir, tokens_path, logits_path, atol = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    with open(f"{hf_dir}/config.json") as f:
        cfg = json.load(f)
    assert cfg["model_type"] == "gpt2" and cfg["tie_word_embeddings"], cfg
    assert cfg["activation_function"] == "gelu_new" and cfg["layer_norm_epsilon"] == 1e-5, cfg
    p = load_file(f"{hf_dir}/model.safetensors")
    for k, v in p.items():
        assert v.dtype == np.float32, (k, v.dtype)
    V = cfg["vocab_size"]
    assert p["transformer.wte.weight"].shape == (V, cfg["n_embd"])
    assert "lm_head.weight" not in p
    got = np.fromfile(logits_path, dtype=np.float32)
    seqs = [[int(t) for t in line.split()] for line in open(tokens_path) if line.split()]
    want_len = sum(len(s) for s in seqs) * V
    if got.size != want_len:
        print(f"ctrain logits hold {got.size} floats, want {want_len}")
        return 1
    off, worst = 0, 0.0
    for s in seqs:
        ref = forward(p, cfg, np.array(s))
        ours = got[off:off + len(s) * V].reshape(len(s), V)
        off += len(s) * V
        d = float(np.abs(ref - ours).max())
        print(f"T={len(s):3d}: max |numpy - ctrain| = {d:.3g}, logit range "
              f"[{ref.min():.3g}, {ref.max():.3g}]")
        worst = max(worst, d)
    print(f"worst {worst:.3g} (tolerance {atol:g})")
    return 0 if worst <= atol else 1


if __name__ == "__main__":
    sys.exit(main())
