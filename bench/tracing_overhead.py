"""Overhead of run_with_cache on every residual site against a plain forward, same run.

    python bench/tracing_overhead.py [--model smollm2-135m] [--batch 8] [--pos 32] [--reps 20]

Prints the median time of a plain HF forward, of ``run_with_cache`` on all
``hook_resid_pre/mid/post`` sites (plus embed and ln_final), of the same with nnsight, and
the overhead ratios. Target: ≤ 10 % over the plain forward for the hook engine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import interpbench


def _time(fn, reps):
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--pos", type=int, default=32)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    m = interpbench.load_model(args.model, device=args.device)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, m.cfg.d_vocab, (args.batch, args.pos), generator=g).to(m.device)
    names = ["hook_embed", "blocks.*.hook_resid_pre", "blocks.*.hook_resid_mid", "blocks.*.hook_resid_post",
             "ln_final.hook_normalized"]
    n_sites = sum(len(interpbench.sites.expand(n, m.site_names)) for n in names)

    def sync():
        if m.device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        # interleave the two so machine noise hits both alike; median of each
        plain_fn = lambda: (m.hf(input_ids=ids, use_cache=False).logits, sync())  # noqa: E731
        ours_fn = lambda: (m.run_with_cache(ids, names), sync())  # noqa: E731
        plain_t, ours_t = [], []
        for _ in range(args.reps):
            plain_t.append(_time(plain_fn, 1))
            ours_t.append(_time(ours_fn, 1))
        plain, ours = statistics.median(plain_t), statistics.median(ours_t)
        from interpbench.engines.nnsight_engine import run_with_nnsight

        nn_t = _time(lambda: (run_with_nnsight(m, ids, cache=names), sync()), max(3, args.reps // 4))
    print(f"model {args.model} on {m.device}, batch {args.batch} x {args.pos} tokens, {n_sites} residual sites cached")
    print(f"plain HF forward          : {plain * 1e3:8.1f} ms")
    print(f"interpbench run_with_cache: {ours * 1e3:8.1f} ms   overhead {100 * (ours / plain - 1):+.1f} %  (target <= +10 %)")
    print(f"nnsight trace + save      : {nn_t * 1e3:8.1f} ms   overhead {100 * (nn_t / plain - 1):+.1f} %")


if __name__ == "__main__":
    main()
