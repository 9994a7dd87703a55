"""Train the attention-only induction model and write its weights (run as a script).

    python -m interpbench.groundtruth.train_induction [--steps N] [--heads 2] [--norm none] [--out DIR]

1. Build an :class:`~interpbench.groundtruth.attn_only.AttnOnlyTransformer` (2 layers,
   2 heads, d_model 64, learned positions, no norm, no MLPs) with a fixed seed. Without
   LayerNorm and with few heads the model learns one previous-token head feeding one
   induction head, and zero-ablation gradients do not vanish (a scale-invariant norm
   makes the gradient of a sender zeroed to nothing meaningless).
2. Train with AdamW on :func:`~interpbench.groundtruth.induction_data.repeat_batch`
   sequences (random segment copied to a random later offset); the loss is the
   next-token cross-entropy on the repeated part only.
3. Every ``eval_every`` steps, measure the in-context loss and accuracy on the repeat of
   fresh held-out sequences against the unigram baseline ``ln(d_vocab - 1)``.
4. Write ``induction.safetensors`` and ``induction_config.json`` (config + the training
   figures) atomically to ``interpbench/groundtruth/weights/``.

The true circuit is established afterwards by :mod:`interpbench.groundtruth.induction_truth`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .attn_only import AttnOnlyConfig, AttnOnlyTransformer
from .induction_data import repeat_batch

WEIGHTS_DIR = Path(__file__).parent / "weights"
SCHEMA_VERSION = 1
DEFAULT_CFG = AttnOnlyConfig(n_heads=2, norm="none")
"""The shipped induction model's shape."""


@torch.no_grad()
def evaluate(model: AttnOnlyTransformer, n: int = 512, seq_len: int = 48, seed: int = 12345) -> dict:
    """In-context loss/accuracy on the repeated part of fresh sequences, and the baseline."""
    gen = torch.Generator().manual_seed(seed)
    tokens, mask = repeat_batch(n, seq_len, model.cfg.d_vocab, gen)
    logits = model(tokens)[:, :-1]  # [batch pos-1 vocab] predicts tokens[:, 1:]
    target, m = tokens[:, 1:], mask[:, :-1]
    loss = F.cross_entropy(logits[m], target[m])
    acc = (logits[m].argmax(-1) == target[m]).float().mean()
    return {"repeat_loss": float(loss), "repeat_acc": float(acc),
            "unigram_loss": math.log(model.cfg.d_vocab - 1), "n_eval_tokens": int(m.sum())}


def train(steps: int = 3000, batch: int = 64, seq_len: int = 48, lr: float = 2e-3, seed: int = 0,
          eval_every: int = 250, cfg: AttnOnlyConfig = DEFAULT_CFG) -> tuple[AttnOnlyTransformer, dict]:
    torch.manual_seed(seed)
    model = AttnOnlyTransformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 100) * max(0.05, 1 - i / steps))
    gen = torch.Generator().manual_seed(seed + 1)
    history, t0 = [], time.perf_counter()
    for step in range(1, steps + 1):
        model.train()
        tokens, mask = repeat_batch(batch, seq_len, cfg.d_vocab, gen)
        logits = model(tokens)[:, :-1]
        loss = F.cross_entropy(logits[mask[:, :-1]], tokens[:, 1:][mask[:, :-1]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            model.eval()
            ev = evaluate(model)
            ev.update(step=step, train_loss=float(loss), seconds=round(time.perf_counter() - t0, 1))
            history.append(ev)
            print(json.dumps(ev), flush=True)
    model.eval()
    final = evaluate(model)
    return model, {"final": final, "history": history, "steps": steps, "batch": batch, "seq_len": seq_len,
                   "lr": lr, "seed": seed, "train_seconds": round(time.perf_counter() - t0, 1)}


def save(model: AttnOnlyTransformer, report: dict, out: Path = WEIGHTS_DIR) -> None:
    from safetensors.torch import save_file

    from ..paths import atomic_write_bytes, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".induction.safetensors.tmp"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    atomic_write_bytes(out / "induction.safetensors", tmp.read_bytes())
    tmp.unlink()
    meta = {"schema_version": SCHEMA_VERSION, "config": model.cfg.to_dict(), "training": report}
    atomic_write_text(out / "induction_config.json", json.dumps(meta, indent=1) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--heads", type=int, default=DEFAULT_CFG.n_heads)
    ap.add_argument("--norm", choices=("layernorm", "none"), default=DEFAULT_CFG.norm)
    ap.add_argument("--out", type=Path, default=WEIGHTS_DIR)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # 1 thread is faster on the shared 2-core box
    cfg = AttnOnlyConfig(n_heads=args.heads, norm=args.norm)
    model, report = train(steps=args.steps, seed=args.seed, lr=args.lr, cfg=cfg)
    save(model, report, args.out)
    print(json.dumps(report["final"]))


if __name__ == "__main__":
    main()
