"""Full residual layer × position activation-patching sweep on smollm2-135m, one IOI prompt.

interpbench's fast path (batched patches, layer skip, KV prefix reuse, last-position
logits) against ``transformer_lens.patching.get_act_patch_resid_pre`` on a
``TransformerBridge`` of the same model, in the same run. The two are timed alternately
``--reps`` times (default 3); prints each time, the medians, the ratio of the medians and
the max abs difference of the two [n_layers, n_pos] grids. No pass/fail.

    python bench/patching_sweep.py [--reps 3] [--max-tokens 4096] [--skip-tl] [--layers 0,10,20]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # transformer_lens.patching's per-run bar would flood the output

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-tl", action="store_true", help="time interpbench only")
    ap.add_argument("--layers", default=None, help="comma-separated subset of layers (default: all)")
    ap.add_argument("--reps", type=int, default=3, help="alternating timed runs of each side (medians reported)")
    args = ap.parse_args()
    logging.getLogger("transformer_lens").setLevel(logging.ERROR)

    import interpbench
    from interpbench.patching import activation_patch
    from interpbench.tasks import make_task

    m = interpbench.load_model(args.model)
    p = make_task("ioi", m, n=1, seed=args.seed)
    print(f"model {m.cfg.name}: {m.cfg.n_layers} layers; prompt {p.clean_text[0]!r} ({p.clean.shape[1]} tokens)")
    print(f"answer {m.tokenizer.decode(p.answer.tolist())!r} vs {m.tokenizer.decode(p.wrong.tolist())!r}; "
          f"grid {m.cfg.n_layers} x {p.clean.shape[1]} = {m.cfg.n_layers * p.clean.shape[1]} patched runs")

    def metric(logits):  # same metric for both: mean logit difference at the last position
        last = logits[:, -1]
        return (last.gather(1, p.answer[:, None]) - last.gather(1, p.wrong[:, None])).mean()

    with torch.no_grad():
        activation_patch(m, p.clean, p.corrupted, site="resid_pre", metric="logit_diff", answer=p.answer,
                         wrong=p.wrong, layers=[0, 1])  # warm-up
    layers = None if args.layers is None else [int(x) for x in args.layers.split(",")]
    if layers is not None:
        print(f"layer subset {layers}: {len(layers) * p.clean.shape[1]} patched runs on each side")
    def run_ours():
        t = time.perf_counter()
        r = activation_patch(m, p.clean, p.corrupted, site="resid_pre", metric="logit_diff", answer=p.answer,
                             wrong=p.wrong, max_tokens=args.max_tokens, layers=layers)
        return r, time.perf_counter() - t

    bridge = None
    if not args.skip_tl:
        from transformer_lens.model_bridge import TransformerBridge
        import transformer_lens.patching as tlp

        bridge = TransformerBridge.boot_transformers(args.model, hf_model=copy.deepcopy(m.hf), tokenizer=m.tokenizer)
        with torch.no_grad():
            _, clean_cache = bridge.run_with_cache(p.clean)
            bridge(p.corrupted)  # warm-up

    def run_tl():
        t = time.perf_counter()
        with torch.no_grad():
            if layers is None:
                r = tlp.get_act_patch_resid_pre(bridge, p.corrupted, clean_cache, metric)
            else:
                import pandas as pd

                T = p.clean.shape[1]
                cells = pd.DataFrame([(x, q) for x in layers for q in range(T)], columns=["layer", "pos"])
                r = tlp.get_act_patch_resid_pre(bridge, p.corrupted, clean_cache, metric, index_axis_names=None,
                                                index_df=cells).view(-1, T)
        return r, time.perf_counter() - t

    t_ours_all, t_tl_all = [], []
    for rep in range(args.reps):
        ours, t = run_ours()
        t_ours_all.append(t)
        line = f"rep {rep + 1}: interpbench {t:.2f} s"
        if bridge is not None:
            ref, t = run_tl()
            t_tl_all.append(t)
            line += f", transformer_lens {t:.2f} s"
        print(line, flush=True)
    t_ours = statistics.median(t_ours_all)
    print(f"interpbench fast path: median {t_ours:.2f} s ({ours.n_forwards} forwards, max_tokens={args.max_tokens}, "
          f"forward_cost={ours.meta['forward_cost']}, {ours.meta['skipped_noop_patches']} no-op patches not run)")
    if bridge is None:
        return
    t_tl = statistics.median(t_tl_all)
    diff = (ref.to(ours.values.device) - ours.values).abs().max().item()
    print(f"transformer_lens.patching.get_act_patch_resid_pre on TransformerBridge: median {t_tl:.2f} s")
    print(f"speed-up (ratio of medians over {args.reps} alternating reps): {t_tl / t_ours:.1f}x   "
          f"max abs difference: {diff:.2e}")
    best = ours.values.flatten().argmax().item()
    L, P = divmod(best, ours.values.shape[1])
    L = ours.labels["layer"][L]
    print(f"largest restored logit diff: layer {L}, position {P} ({ours.labels['tokens'][P]!r}) = "
          f"{ours.values.flatten()[best]:.3f} (clean {ours.clean.mean():.3f}, corrupted {ours.corrupted.mean():.3f})")


if __name__ == "__main__":
    main()
