"""Bench: our TopK SAE trainer vs SAELens's (and sparsify's, if installed) on the same activations.

Same activation tensor, width, k, batch size, token budget, Adam settings (lr, betas,
warm-up, no decay), fp32, activations normalised to mean norm sqrt(d_in), in the same run.
Prints tokens/s (wall clock of the whole training call, init included) and final FVU / L0,
both measured here by our evaluator on the same rows after loading each trained SAE (the
SAELens one through our SAELens-format loader), and the ratios.

SAELens pins transformer-lens < 4, which conflicts with our environment, so it runs in a
separate venv (``.venv-bench``, git-ignored) as a subprocess on the same safetensors file::

    python -m venv .venv-bench && .venv-bench/bin/pip install -c constraints.txt sae-lens

Run::

    python bench/sae_training.py                      # newest cache/activations folder, else synthetic
    python bench/sae_training.py --activations cache/activations/<folder> --tokens 40000 --batch 512
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAELENS_SCRIPT = r"""
import json, sys, time, torch
from safetensors.torch import load_file
from sae_lens import SAETrainer
from sae_lens.config import SAETrainerConfig, LoggingConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(args["seed"])
acts = load_file(args["file"])["activations"].float()
B, n_steps = args["batch"], args["tokens"] // args["batch"]
def provider():
    epoch = 0
    while True:
        g = torch.Generator().manual_seed(args["seed"] * 1000003 + epoch)
        perm = torch.randperm(acts.shape[0], generator=g)
        for a in range(0, acts.shape[0] - B + 1, B):
            yield acts[perm[a:a + B]]
        epoch += 1
cfg = TopKTrainingSAEConfig(d_in=acts.shape[1], d_sae=args["d_sae"], k=args["k"], dtype="float32", device="cpu",
                            normalize_activations="expected_average_only_in",
                            use_sparse_activations=args["sparse"])
sae = TopKTrainingSAE(cfg)
tcfg = SAETrainerConfig(total_training_samples=n_steps * B, train_batch_size_samples=B, lr=args["lr"],
                        lr_end=args["lr"], lr_warm_up_steps=args["warmup"], adam_beta1=0.9, adam_beta2=0.999,
                        device="cpu", n_batches_for_norm_estimate=8, logger=LoggingConfig(log_to_wandb=False))
t0 = time.perf_counter()
SAETrainer(tcfg, sae, provider()).fit()
elapsed = time.perf_counter() - t0
sae.save_inference_model(args["out"])
with torch.no_grad():  # SAELens's own view of its SAE, to cross-check our loader
    err = tot = nz = 0.0
    mean = acts.mean(0)
    for a in range(0, acts.shape[0], 4096):
        x = acts[a:a + 4096]
        z = sae.encode(x)
        err += float((sae.decode(z) - x).pow(2).sum()); tot += float((x - mean).pow(2).sum()); nz += float((z != 0).sum())
print(json.dumps({"elapsed": elapsed, "tokens": n_steps * B, "own_fvu": err / tot, "own_l0": nz / acts.shape[0]}))
"""


def _find_acts() -> Path | None:
    root = ROOT / "cache" / "activations"
    cands = sorted((p for p in root.glob("*") if (p / "manifest.json").exists()), key=lambda p: p.stat().st_mtime)
    return cands[-1] if cands else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--activations", default=None, help="activation cache folder or safetensors file")
    ap.add_argument("--tokens", type=int, default=40_960)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--expansion", type=int, default=8)
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for every trainer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-saelens", action="store_true")
    ap.add_argument("--venv", default=str(ROOT / ".venv-bench"), help="venv with sae-lens installed")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from interpbench.sae.config import SAEConfig, TrainConfig
    from interpbench.sae.evaluate import eval_activations
    from interpbench.sae.formats import load
    from interpbench.sae.store import TensorSource, load_activations
    from interpbench.sae.train import Trainer

    src_path = Path(args.activations) if args.activations else _find_acts()
    if src_path is not None:
        acts, _, man = load_activations(src_path)
        what = f"{src_path.name}" + (f" ({man.model} {man.site}, {man.n_tokens:,} rows)" if man else "")
    else:
        from interpbench.sae.synthetic import make_synthetic

        acts = make_synthetic(n=50_000, d=576, n_features=8192, k=32, seed=0).acts
        what = "synthetic (no activation cache found; run `interpbench sae harvest` for real ones)"
    acts = acts.float().contiguous()
    d_in, d_sae = acts.shape[1], args.expansion * acts.shape[1]
    print(f"data: {what}; d_in={d_in} d_sae={d_sae} k={args.k} batch={args.batch} tokens={args.tokens:,} "
          f"threads={args.threads}")
    tmp = Path(tempfile.mkdtemp(prefix="sae-bench-"))
    save_file({"activations": acts}, str(tmp / "acts.safetensors"))
    results = {}

    # -- ours ---------------------------------------------------------------------------
    for fast in (True,):
        t0 = time.perf_counter()
        tr = Trainer(SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, k=args.k),
                     TrainConfig(batch_size=args.batch, n_tokens=args.tokens, lr=args.lr, warmup_steps=args.warmup,
                                 decay_start=1.0, seed=args.seed, log_every=50),
                     TensorSource(acts, batch_size=args.batch, seed=args.seed), progress=False, fast=fast)
        sae = tr.run()
        el = time.perf_counter() - t0
        figs = eval_activations(sae, acts)
        results["interpbench"] = {"tok_s": tr.step * args.batch / el, "fvu": figs["fvu"], "l0": figs["l0"],
                                  "dead": figs["dead_fraction"]}
        print("interpbench", results["interpbench"], flush=True)

    # -- SAELens ------------------------------------------------------------------------
    py = Path(args.venv) / "bin" / "python"
    if args.skip_saelens:
        pass
    elif not py.exists():
        print(f"SAELens: skipped, no venv at {args.venv} (see the module docstring)")
    else:
        for sparse in (False, True):
            name = "saelens" + ("-sparse" if sparse else "")
            cfg = {"file": str(tmp / "acts.safetensors"), "out": str(tmp / name), "batch": args.batch,
                   "tokens": args.tokens, "d_sae": d_sae, "k": args.k, "lr": args.lr, "warmup": args.warmup,
                   "seed": args.seed, "threads": args.threads, "sparse": sparse}
            env = {**os.environ, "PYTHONPATH": "", "WANDB_MODE": "disabled", "TQDM_DISABLE": "1"}
            proc = subprocess.run([str(py), "-c", SAELENS_SCRIPT, json.dumps(cfg)], capture_output=True, text=True,
                                  env=env)
            if proc.returncode != 0:
                import re

                lines = [ln for ln in proc.stderr.splitlines() if re.match(r"^\w*(Error|Exception)\b", ln)]
                print(f"{name}: failed: {(lines or proc.stderr.splitlines() or ['?'])[-1][:300]}")
                continue
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            figs = eval_activations(load(tmp / name), acts)  # SAELens folder read by our loader
            results[name] = {"tok_s": info["tokens"] / info["elapsed"], "fvu": figs["fvu"], "l0": figs["l0"],
                             "dead": figs["dead_fraction"], "fvu_by_saelens": info["own_fvu"],
                             "l0_by_saelens": info["own_l0"]}
            print(name, results[name], flush=True)

    try:
        import sparsify  # noqa: F401

        print("sparsify: installed but not wired into this bench yet")
    except ImportError:
        print("sparsify: not installed (pip install eleutherai-sparsify pulls its own torch pins); skipped")

    print(f"\n{'trainer':18s} {'tokens/s':>10s} {'FVU':>8s} {'L0':>6s} {'dead':>6s}")
    for name, r in results.items():
        print(f"{name:18s} {r['tok_s']:10,.0f} {r['fvu']:8.4f} {r['l0']:6.1f} {r['dead']:6.1%}")
    ours = results["interpbench"]
    for name, r in results.items():
        if name != "interpbench":
            print(f"ratio interpbench / {name}: {ours['tok_s'] / r['tok_s']:.2f}x tokens/s; "
                  f"FVU {ours['fvu']:.4f} vs {r['fvu']:.4f}")
    print(json.dumps({"results": results, "data": what}, indent=None))


if __name__ == "__main__":
    main()
