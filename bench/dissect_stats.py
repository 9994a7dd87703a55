"""Streaming top-0.5 % thresholds (TailQuantile, batch by batch) vs torch.quantile on all activations.

Prints wall time, peak extra memory held, the max abs difference (exact by construction), and
the ratio against the peer measured in the same run. No pass/fail.

    python bench/dissect_stats.py [--rows 200000] [--units 1536] [--batch 4096]
"""

from __future__ import annotations

import argparse
import time

import torch

from interpbench.dissect.stats import TailQuantile


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--units", type=int, default=1536)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--q", type=float, default=0.995)
    a = ap.parse_args()
    torch.manual_seed(0)
    batches = [torch.randn(a.batch, a.units) for _ in range(a.rows // a.batch)]
    n = sum(b.shape[0] for b in batches)
    tail = int(n * (1 - a.q)) + 2
    t0 = time.perf_counter()
    tq = TailQuantile(a.units, m=tail)
    for b in batches:
        tq.update(b)
    stream = tq.quantile(a.q)
    t_stream = time.perf_counter() - t0
    t0 = time.perf_counter()
    full = torch.cat(batches)
    ref = torch.quantile(full, a.q, dim=0) if full.numel() < 2 ** 24 else torch.stack(
        [torch.quantile(full[:, u], a.q) for u in range(a.units)])
    t_full = time.perf_counter() - t0
    print(f"rows {n}  units {a.units}  q {a.q}  tail kept {tail}")
    print(f"streaming TailQuantile: {t_stream:.2f} s, state {tq.top.numel() * 4 / 2**20:.1f} MiB, exact={tq.exact(a.q)}")
    print(f"torch.quantile on all:  {t_full:.2f} s, holds {full.numel() * 4 / 2**20:.1f} MiB")
    print(f"max |diff| {float((stream - ref).abs().max()):.2e}   time ratio stream/full {t_stream / t_full:.2f}   "
          f"memory ratio {tq.top.numel() / full.numel():.4f}")


if __name__ == "__main__":
    main()
