#!/usr/bin/env python3
"""Numeric comparisons for the integration tests (stdlib only).

  compare.py losses A/metrics.jsonl B/metrics.jsonl RTOL
      every step's train loss (and val loss) in A equals B's within RTOL
      relative; the same steps must be present.
  compare.py params A.bin B.bin RTOL ATOL
      two float32 files agree: ||a-b|| <= RTOL*||b|| (L2 over all floats)
      and max |a-b| <= ATOL.
  compare.py weights A.bin B.bin METRICS [EPS]
      the weights a parallel layout (A) trained against one process (B)
      agree within the bound stated below, with the learning rates of the
      steps in METRICS (B's metrics.jsonl) and AdamW's optim.eps EPS
      (default 1e-8, the config default).
  compare.py gpu_params A.bin B.bin RTOL ATOL METRICS L C VP MAXT
      `params` for the bf16 GPU path's GPT-2 weights (layers L, width C,
      padded vocabulary VP, positions MAXT), except the key biases: their
      gradient is exactly zero in exact arithmetic (softmax ignores a
      constant added to every key), so what AdamW sees there is bf16
      rounding noise, normalised to steps of about lr each whatever its
      size. Two runs that round differently (TP sums partials in another
      order; DP averages in another order) move those coordinates apart by
      up to 2 * sum(lr) (METRICS: the reference's metrics.jsonl), which
      dominated the relative L2 of a TP = 2 run (0.24 on the key biases,
      6e-4 on the rest). They are held to that bound and left out of the
      L2 and max checks.
Exit status 0 when they agree, 1 otherwise, with the worst offender printed.

The bound for a layout against one process, whatever the DP and TP sizes:
      max_i |a_i - b_i| <= sum_s lr_s * min(2, DELTA / EPS),  DELTA = 5e-10
      ||a - b|| <= 1e-4 * ||b||
(the losses, compared separately, agree within 1e-5 relative). Why this
form, and not a fixed 1e-5 per element:
- The layouts compute the same gradients up to float32 summation order:
  the row-parallel partial sums and the DP average add the same terms in
  another order. Measured at step 1 on the test model: every tensor's
  gradient agrees within ~1e-6 relative (rms) at TP = 2, 3 and 6 alike; the
  difference does not grow with the TP size.
- AdamW divides each coordinate's gradient by its own RMS, sqrt(v) + eps.
  Where a coordinate's gradient is itself rounding noise of the order of
  eps (key biases, whose true gradient is 0; sums over positions that
  cancel), a gradient difference delta moves its update by up to
  lr * delta / eps, and never by more than about 2 * lr. Summed over steps
  that is the bound above; the rest of the network then carries that one
  coordinate's perturbation forward, which the L2 bound allows for.
- DELTA, the size such differences reach, is measured: 84 runs of 10 steps
  (seeds 1-12; TP = 2, 3, 6 and DP = 2 on a 6-head model with a 4096
  vocabulary, TP = 2, 4 and DP = 2 on the suite's 4-head model with 512)
  gave at most max |a - b| = 0.010 * sum lr (1.8e-4, sum lr = 0.0175;
  median 4e-6), a relative L2 of 2.7e-5 (typical 7e-7) and a relative loss
  difference of 3.5e-7. DELTA = 5e-10 puts the per-element bound at
  0.05 * sum lr for eps = 1e-8, 5x the worst case. 8 of the 60 TP runs, at
  every TP size, exceeded the 1e-5 per element this suite used to ask
  for; none of the 24 DP runs did (DP reorders only the final gradient sum, TP
  also the activations). Which coordinate is worst, and how far it drifts,
  depends on the seed and on the layout's rounding, not on the TP size
  growing: at seed 7, TP = 2 drifted most (1.8e-5, TP = 3 5.3e-6), at
  seed 9, TP = 4. Raising eps to 1e-6 shrinks every difference to ~1e-6,
  lowering it to 1e-10 grows them to ~5e-4: the eps scaling above.
What it still catches: a wrong gradient on any coordinate moves it by
about lr per step, O(sum lr), 20x the per-element bound; an error of 2e-4
relative on every coordinate's gradient (not a common scale, to which
AdamW is blind) exceeds the L2 bound on the test models; and a wrong
forward shows in the losses, held to 1e-5 (observed <= 3.5e-7).
"""
import array
import json
import sys


# The bound of `weights` (see above).
WEIGHTS_DELTA = 5e-10
WEIGHTS_RTOL = 1e-4


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def losses(path):
    out = {}
    for rec in records(path):
        for key in ("loss", "val_loss"):
            if key in rec:
                out[(key, rec["step"])] = rec[key]
    return out


def floats(path):
    a = array.array("f")
    with open(path, "rb") as f:
        a.frombytes(f.read())
    return a


def agree(a, b, rtol, atol):
    """||a-b|| <= rtol*||b|| and max |a-b| <= atol, reported."""
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


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
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
        return agree(floats(sys.argv[2]), floats(sys.argv[3]), float(sys.argv[4]),
                     float(sys.argv[5]))
    if mode == "weights":
        eps = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-8
        lr_sum = sum(rec["lr"] for rec in records(sys.argv[4]) if "lr" in rec)
        if lr_sum <= 0:
            print(f"{sys.argv[4]} logs no learning rate")
            return 1
        atol = lr_sum * min(2.0, WEIGHTS_DELTA / eps)
        print(f"sum of lr {lr_sum:.4g}, eps {eps:g}: ", end="")
        return agree(floats(sys.argv[2]), floats(sys.argv[3]), WEIGHTS_RTOL, atol)
    if mode == "gpu_params":
        a, b = floats(sys.argv[2]), floats(sys.argv[3])
        rtol, atol = float(sys.argv[4]), float(sys.argv[5])
        lr_sum = sum(rec["lr"] for rec in records(sys.argv[6]) if "lr" in rec)
        L, C, VP, MAXT = (int(x) for x in sys.argv[7:11])
        qkvb = VP * C + MAXT * C + 2 * L * C + L * 3 * C * C
        noise = set()
        for layer in range(L):
            noise.update(range(qkvb + layer * 3 * C + C, qkvb + layer * 3 * C + 2 * C))
        if len(a) != len(b) or not a or max(noise) >= len(a):
            print(f"sizes {len(a)} vs {len(b)} do not fit L={L} C={C} VP={VP} MAXT={MAXT}")
            return 1
        kb = max(abs(a[i] - b[i]) for i in noise)
        print(f"key biases: max |diff| {kb:.3g} (bound 2 * sum lr = {2 * lr_sum:.3g}); rest: ",
              end="")
        rest = [i for i in range(len(a)) if i not in noise]
        ok = agree(array.array("f", (a[i] for i in rest)), array.array("f", (b[i] for i in rest)),
                   rtol, atol)
        return 0 if ok == 0 and kb <= 2 * lr_sum else 1
    print(__doc__)
    return 2


sys.exit(main())
