#!/usr/bin/env python3
"""Numeric comparisons for the integration tests (stdlib only).

  compare.py losses A/metrics.jsonl B/metrics.jsonl RTOL
      every step's train loss (and val loss) in A equals B's within RTOL
      relative; the same steps must be present.
  compare.py params A.bin B.bin RTOL ATOL
      two float32 files agree: ||a-b|| <= RTOL*||b|| (L2 over all floats)
      and max |a-b| <= ATOL.
Exit status 0 when they agree, 1 otherwise, with the worst offender printed.
"""
import array
import json
import sys


def losses(path):
    out = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            for key in ("loss", "val_loss"):
                if key in rec:
                    out[(key, rec["step"])] = rec[key]
    return out


def main():
    mode = sys.argv[1]
    if mode == "losses":
        a, b, rtol = losses(sys.argv[2]), losses(sys.argv[3]), float(sys.argv[4])
        if sorted(a) != sorted(b) or not a:
            print(f"different steps: {sorted(a)[:5]}... vs {sorted(b)[:5]}...")
            return 1
        worst = max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-30) for k in a)
        worst_abs = max(abs(a[k] - b[k]) for k in a)
        print(f"{len(a)} losses, worst relative difference {worst:.3g} (tolerance {rtol:g}), "
              f"max |diff| {worst_abs:.3g}")
        return 0 if worst <= rtol else 1
    if mode == "params":
        a, b = array.array("f"), array.array("f")
        with open(sys.argv[2], "rb") as f:
            a.frombytes(f.read())
        with open(sys.argv[3], "rb") as f:
            b.frombytes(f.read())
        rtol, atol = float(sys.argv[4]), float(sys.argv[5])
        if len(a) != len(b) or not a:
            print(f"different sizes: {len(a)} vs {len(b)}")
            return 1
        worst, at, dd, bb = 0.0, 0, 0.0, 0.0
        for i, (x, y) in enumerate(zip(a, b)):
            d = abs(x - y)
            dd += d * d
            bb += y * y
            if d > worst:
                worst, at = d, i
        rel = (dd / bb) ** 0.5 if bb > 0 else float("inf")
        print(f"{len(a)} floats: relative L2 difference {rel:.3g} (tolerance {rtol:g}), "
              f"max |diff| {worst:.3g} at {at} (tolerance {atol:g})")
        return 0 if rel <= rtol and worst <= atol else 1
    print(__doc__)
    return 2


sys.exit(main())
