"""The SAE trainer: Adam with warm-up and decay, checkpoints with exact resume, data parallel.

1. Init (fresh run): draw a sample of the data; the activation scale is
   ``sqrt(d_in) / mean ‖x‖`` (recorded in ``SAEConfig.act_scale``; transcoders get their own
   ``out_scale``); decoder rows are random unit vectors, the encoder their transpose;
   ``b_dec`` is the geometric median (Weiszfeld) or the mean of the scaled sample.
2. Each step: take this process's slice of the next global batch, compute the arch's loss
   (:meth:`SAE.training_loss`; AuxK on latents dead for ``dead_after_tokens``), backprop,
   average gradients over processes (``torch.distributed`` all-reduce, so N processes on
   batch B/N equal one process on batch B), drop the decoder-gradient component parallel to
   each row, Adam step at ``lr(step)`` (linear warm-up, constant, linear decay to 0 from
   ``decay_start``), re-normalise decoder rows (archs that keep unit norm).
3. Every ``log_every`` steps: check the loss is finite (one host sync), update the
   progress bar (loss, L0, FVU, dead fraction) and the optional JSONL log.
4. Checkpoint (``OUT/checkpoint/``, written atomically by rank 0): SAE, Adam state, step,
   data position, dead-latent counters and the loss history, so a killed run restarted
   with the same command continues with the same loss curve. A non-finite loss raises
   :class:`TrainingDiverged` before anything is written: the last good checkpoint stays.
5. At the end the SAE is written to ``OUT/`` (``cfg.json`` + ``weights.safetensors``) with
   ``train.json`` (configs, final figures, tokens/s).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from ..errors import ConfigError, InterpbenchError
from ..paths import atomic_dir, atomic_write_text
from .arch import SAE, geometric_median
from .config import SAEConfig, TrainConfig


class TrainingDiverged(InterpbenchError):
    """The loss became NaN or infinite."""


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def lr_at(step: int, tc: TrainConfig, base: float) -> float:
    """Learning rate at ``step``: linear warm-up, constant, linear decay to 0 after ``decay_start``."""
    n = tc.n_steps
    if tc.warmup_steps and step < tc.warmup_steps:
        return base * (step + 1) / tc.warmup_steps
    start = int(tc.decay_start * n)
    if step >= start and n > start:
        return base * max(0.0, (n - step) / (n - start))
    return base


class Trainer:
    """Train one SAE on a batch source (:class:`~interpbench.sae.store.TensorSource`)."""

    def __init__(self, sae_cfg: SAEConfig, train_cfg: TrainConfig, source, *, out: Optional[Path] = None,
                 device=None, log_file: Optional[Path] = None, progress: bool = True, fast: bool = True):
        self.tc, self.source, self.fast = train_cfg, source, fast
        self.out = Path(out) if out is not None else None
        self.log_file = Path(log_file) if log_file is not None else None
        self.progress = progress
        self.rank, self.world = _world()
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.step = 0
        self.history: list[dict] = []
        ckpt = self.out / "checkpoint" if self.out is not None else None
        if ckpt is not None and (ckpt / "state.pt").exists():
            self._resume(ckpt, sae_cfg)
        else:
            self.sae = self._init(sae_cfg)
            self.opt = self._make_opt()
            self.since_fired = torch.zeros(self.sae.cfg.d_sae, dtype=torch.long, device=self.device)
        self.base_lr = train_cfg.lr or 2e-4 / math.sqrt(self.sae.cfg.d_sae / 16384)

    # -- setup ------------------------------------------------------------------------
    def _make_opt(self) -> torch.optim.Optimizer:
        kw = {"fused": True} if self.device.type in ("cpu", "cuda") else {}  # one kernel per step
        return torch.optim.Adam(self.sae.parameters(), lr=self.tc.lr or 1e-4, betas=tuple(self.tc.betas), **kw)

    def _init(self, cfg: SAEConfig) -> SAE:
        tc = self.tc
        x, y = self.source.sample(min(8192, self.source.n_rows))
        if x.shape[1] != cfg.d_in:
            raise ConfigError(f"activations have width {x.shape[1]} but the SAE expects d_in={cfg.d_in}")
        if y.shape[1] != cfg.d_output:
            raise ConfigError(f"targets have width {y.shape[1]} but the SAE expects d_out={cfg.d_output}")
        x, y = x.float().to(self.device), y.float().to(self.device)
        if tc.normalize_activations:
            s_in = math.sqrt(cfg.d_in) / float(x.norm(dim=-1).mean().clamp_min(1e-12))
            s_out = s_in if not cfg.is_transcoder else math.sqrt(cfg.d_output) / float(y.norm(dim=-1).mean().clamp_min(1e-12))
            cfg = cfg.replace(act_scale=s_in, out_scale=s_out)
        gen = torch.Generator().manual_seed(tc.seed)
        sae = SAE(cfg, device=self.device).init_weights(gen)
        ys = y * cfg.out_scale
        with torch.no_grad():
            if tc.b_dec_init == "geometric_median":
                sae.b_dec.copy_(geometric_median(ys))
            elif tc.b_dec_init == "mean":
                sae.b_dec.copy_(ys.mean(0))
        if self.world > 1:  # identical start on every process
            for p in list(sae.parameters()) + list(sae.buffers()):
                dist.broadcast(p.data, 0)
        return sae

    # -- checkpoints ------------------------------------------------------------------
    def _state(self) -> dict:
        return {"sae_cfg": self.sae.cfg.to_dict(), "train_cfg": self.tc.to_dict(), "step": self.step,
                "sae": self.sae.state_dict(), "opt": self.opt.state_dict(), "source": self.source.state_dict(),
                "since_fired": self.since_fired, "history": self.history}

    def save_checkpoint(self) -> None:
        if self.out is None or self.rank != 0:
            return
        with atomic_dir(self.out / "checkpoint") as tmp:
            torch.save(self._state(), tmp / "state.pt")
            atomic_write_text(tmp / "step.txt", str(self.step))

    def _resume(self, ckpt: Path, cfg: SAEConfig) -> None:
        state = torch.load(ckpt / "state.pt", map_location=self.device, weights_only=False)
        saved = SAEConfig.from_dict(state["sae_cfg"])
        for field in ("arch", "d_in", "d_sae", "d_out", "k", "site", "out_site"):
            if getattr(saved, field) != getattr(cfg, field):
                raise ConfigError(f"the checkpoint in {ckpt} is for {field}={getattr(saved, field)!r}, not "
                                  f"{getattr(cfg, field)!r}; use another --out folder or delete the checkpoint")
        if TrainConfig.from_dict(state["train_cfg"]) != self.tc:
            raise ConfigError(f"the checkpoint in {ckpt} was made with other training settings; resume with the "
                              f"same command or use another --out folder")
        self.sae = SAE(saved, device=self.device)
        self.sae.load_state_dict(state["sae"])
        self.opt = self._make_opt()
        self.opt.load_state_dict(state["opt"])
        self.source.load_state_dict(state["source"])
        self.since_fired = state["since_fired"].to(self.device)
        self.step = int(state["step"])
        self.history = list(state["history"])

    # -- the loop ---------------------------------------------------------------------
    def _reduce_grads(self) -> None:
        for p in self.sae.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(self.world)

    def run(self, until: Optional[int] = None) -> SAE:
        """Train to the end (or to step ``until``, checkpointing there: a simulated kill)."""
        tc, sae = self.tc, self.sae
        end = tc.n_steps if until is None else min(until, tc.n_steps)
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=tc.n_steps, initial=self.step, desc=f"train {sae.cfg.arch} SAE", unit="step")
        unit_norm = sae.cfg.normalize_decoder and sae.cfg.arch != "relu"
        pending: list[tuple[int, dict]] = []
        sae.train()
        t0, tok0 = time.perf_counter(), self.step
        while self.step < end:
            x, y = self.source.next()
            xs = x.to(self.device, torch.float32, non_blocking=True) * sae.cfg.act_scale
            ys = y.to(self.device, torch.float32, non_blocking=True) * sae.cfg.out_scale
            dead = self.since_fired >= tc.dead_after_tokens
            terms = sae.training_loss(xs, ys, dead, aux_coeff=tc.aux_coeff, aux_k=tc.aux_k, fast=self.fast)
            self.opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            fired = terms["fired"]
            if self.world > 1:
                self._reduce_grads()
                f = fired.to(torch.int32)
                dist.all_reduce(f, op=dist.ReduceOp.MAX)
                fired = f.bool()
            if unit_norm:
                sae.remove_parallel_grad_()
            lr = lr_at(self.step, tc, self.base_lr)
            for g in self.opt.param_groups:
                g["lr"] = lr
            self.opt.step()
            if unit_norm:
                sae.normalize_decoder_()
            self.since_fired += tc.batch_size
            self.since_fired[fired] = 0
            rec = {k: terms[k].detach() for k in ("loss", "mse", "aux", "fvu", "l0")}
            rec["dead"] = dead.float().mean()
            self.step += 1
            pending.append((self.step, rec))
            at_ckpt = tc.checkpoint_every and self.step % tc.checkpoint_every == 0
            if self.step % tc.log_every == 0 or self.step == end or at_ckpt:
                self._flush(pending, lr, bar)
                pending = []
            if at_ckpt and self.step < end:
                self.save_checkpoint()
        if pending:
            self._flush(pending, lr_at(self.step - 1, tc, self.base_lr), bar)
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - t0
        self.tokens_per_s = (self.step - tok0) * tc.batch_size / max(elapsed, 1e-9)
        sae.eval()
        self.save_checkpoint()
        if self.step >= tc.n_steps:
            self._finish()
        return sae

    def _flush(self, pending: list, lr: float, bar) -> None:
        """Move the pending records to the host once, check finiteness, log."""
        if not pending:
            return
        keys = list(pending[0][1])
        vals = torch.stack([torch.stack([r[k].float() for k in keys]) for _, r in pending])  # [n_steps n_keys]
        if self.world > 1:
            dist.all_reduce(vals, op=dist.ReduceOp.SUM)
            vals /= self.world
        vals = vals.cpu()
        if not torch.isfinite(vals[:, 0]).all():
            bad = pending[int((~torch.isfinite(vals[:, 0])).nonzero()[0, 0])][0]
            raise TrainingDiverged(f"loss became non-finite at step {bad}; lower the learning rate (--lr) or check "
                                   f"the activations for inf/NaN. The last good checkpoint is kept"
                                   + (f" in {self.out / 'checkpoint'}" if self.out else ""))
        rows = [{"step": s, **{k: float(v) for k, v in zip(keys, row)}} for (s, _), row in zip(pending, vals)]
        self.history.extend(rows)
        last = rows[-1]
        if bar is not None:
            bar.update(last["step"] - bar.n)
            bar.set_postfix(loss=f"{last['loss']:.4g}", L0=f"{last['l0']:.1f}", FVU=f"{last['fvu']:.3f}",
                            dead=f"{last['dead']:.1%}")
        if self.log_file is not None and self.rank == 0:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "a") as f:
                for r in rows:
                    f.write(json.dumps({**r, "lr": lr}) + "\n")

    def _finish(self) -> None:
        if self.out is None or self.rank != 0:
            return
        from .formats import save

        save(self.sae, self.out)
        tail = self.history[-max(1, len(self.history) // 10):]
        summary = {"train_cfg": self.tc.to_dict(), "sae_cfg": self.sae.cfg.to_dict(), "steps": self.step,
                   "tokens": self.step * self.tc.batch_size, "world_size": self.world,
                   "tokens_per_s": getattr(self, "tokens_per_s", None),
                   "final": {k: sum(r[k] for r in tail) / len(tail) for k in ("loss", "mse", "fvu", "l0", "dead")}}
        atomic_write_text(self.out / "train.json", json.dumps(summary, indent=2))


def train(sae_cfg: SAEConfig, train_cfg: TrainConfig, source, *, out: Optional[Path] = None, device=None,
          log_file: Optional[Path] = None, progress: bool = True) -> SAE:
    """Train (or resume, when ``out/checkpoint`` exists) and return the SAE; saved into ``out``."""
    return Trainer(sae_cfg, train_cfg, source, out=out, device=device, log_file=log_file, progress=progress).run()
