"""Evaluate an SAE: sparsity and reconstruction on activations, and loss recovered in the model.

1. On activation rows (:func:`eval_activations`): L0 (mean active latents per token), FVU
   (Σ‖x - x̂‖² / Σ‖x - mean x‖²), dead fraction (latents that never fire on the rows) and
   dense fraction (latents firing on more than ``dense_freq`` of tokens).
2. In the model (:func:`eval_in_model`): next-token cross-entropy over the same contexts
   (pad targets masked) clean, with the site replaced by the SAE reconstruction at every
   position but BOS (which the SAE never saw in training)
   (``SAESplice(keep_error=False)``; for transcoders the target site gets the decoding of
   the input site), and with the site zero-ablated (again BOS excluded); ``loss recovered = (L_zero - L_sae) /
   (L_zero - L_clean)`` and the mean per-token KL(clean ‖ spliced).
3. Top activating examples (:func:`top_examples`): for each latent the ``n`` rows with
   the largest activation, with their (context, position), kept as a running top-n over
   chunks so memory stays ``d_sae·n``.
The metric functions are pure (tensors in, floats out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import torch
from torch import Tensor

from ..interventions import Replace, Zero
from .arch import SAE

if TYPE_CHECKING:  # pragma: no cover
    from ..models.model import HookedModel

SCHEMA_VERSION = 1


# -- pure metrics -----------------------------------------------------------------------
def l0(z: Tensor) -> float:
    """Mean number of non-zero latents per row of ``z`` [n d_sae]."""
    return float((z != 0).sum(-1).float().mean())


def fvu(x: Tensor, recon: Tensor) -> float:
    """Fraction of variance unexplained of ``recon`` for rows ``x`` [n d]."""
    return float((x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12))


def loss_recovered(clean: float, spliced: float, zero: float) -> float:
    """``(zero - spliced) / (zero - clean)``: 1 = as good as the model, 0 = as bad as ablation."""
    return (zero - spliced) / (zero - clean) if zero != clean else float("nan")


@dataclass(frozen=True)
class EvalResult:
    """Figures for one SAE on one set of tokens."""

    n_tokens: int
    """Activation rows evaluated."""
    l0: float
    """Mean active latents per token."""
    fvu: float
    """Fraction of variance unexplained."""
    mse: float
    """Mean squared error per token (Σ over the width), raw units."""
    dead_fraction: float
    """Latents that never fired on these tokens."""
    dense_fraction: float
    """Latents firing on more than ``dense_freq`` of tokens."""
    dense_freq: float
    """Threshold for 'dense'."""
    ce_clean: Optional[float] = None
    """Next-token loss of the unmodified model (nats/token)."""
    ce_sae: Optional[float] = None
    """Loss with the site replaced by the SAE reconstruction."""
    ce_zero: Optional[float] = None
    """Loss with the site zero-ablated."""
    loss_recovered: Optional[float] = None
    """(ce_zero - ce_sae) / (ce_zero - ce_clean)."""
    kl: Optional[float] = None
    """Mean per-token KL(clean ‖ SAE-spliced), nats."""
    corpus: Optional[str] = None
    """Where the tokens came from."""
    schema_version: int = SCHEMA_VERSION
    """On-disk format version."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        return cls(**d)


@torch.no_grad()
def eval_activations(sae: SAE, acts: Tensor, targets: Optional[Tensor] = None, *, batch_size: int = 4096,
                     dense_freq: float = 0.1) -> dict:
    """L0, FVU, MSE, dead and dense fractions of ``sae`` on rows ``acts`` (raw units)."""
    y_all = acts if targets is None else targets
    n = acts.shape[0]
    counts = torch.zeros(sae.cfg.d_sae, device=sae.device)
    sq_err = torch.zeros((), device=sae.device, dtype=torch.float64)
    nz = torch.zeros((), device=sae.device, dtype=torch.float64)
    mean = y_all.double().mean(0).to(sae.device)
    total = torch.zeros((), device=sae.device, dtype=torch.float64)
    for a in range(0, n, batch_size):
        x = acts[a:a + batch_size].to(sae.device).float()
        y = y_all[a:a + batch_size].to(sae.device).float()
        z = sae.encode(x)
        r = sae.decode(z)
        fired = z != 0
        counts += fired.sum(0)
        nz += fired.sum()
        sq_err += (r - y).double().pow(2).sum()
        total += (y.double() - mean).pow(2).sum()
    freq = counts / n
    return {"n_tokens": n, "l0": float(nz / n), "fvu": float(sq_err / total.clamp_min(1e-12)),
            "mse": float(sq_err / n), "dead_fraction": float((counts == 0).float().mean()),
            "dense_fraction": float((freq > dense_freq).float().mean()), "dense_freq": dense_freq}


def _after_bos(act: Tensor, fn) -> Tensor:
    """Apply ``fn`` to positions 1.. only: the SAE never saw the BOS position, so it stays clean."""
    return torch.cat([act[:, :1], fn(act[:, 1:])], dim=1)


def _ce(logits: Tensor, ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Summed next-token CE and the number of predicted tokens (mask on targets)."""
    lp = torch.log_softmax(logits[:, :-1].float(), -1)  # [b p-1 vocab]
    tgt = ids[:, 1:]
    m = mask[:, 1:].bool()
    nll = -lp.gather(-1, tgt[..., None])[..., 0]
    return nll[m].sum(), m.sum()


@torch.no_grad()
def eval_in_model(sae: SAE, model: "HookedModel", docs: Sequence[str], *, n_contexts: int = 32, ctx_len: int = 128,
                  batch_size: int = 8) -> dict:
    """Clean / SAE-spliced / zero-ablated next-token loss and KL over up to ``n_contexts`` contexts."""
    from .intervene import SAESplice
    from .store import contexts

    site = sae.cfg.site
    if site is None:
        raise ValueError("the SAE config names no site; set cfg.site to evaluate in the model")
    ctxs = contexts(model.tokenizer, docs, ctx_len)[:n_contexts]
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    sums = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "kl": 0.0}
    n_tok = n_kl = 0
    for b0 in range(0, len(ctxs), batch_size):
        chunk = ctxs[b0:b0 + batch_size]
        w = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), w), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, c in enumerate(chunk):
            ids[i, :len(c)] = torch.tensor(c)
            mask[i, :len(c)] = 1
        ids, mask = ids.to(model.device), mask.to(model.device)
        clean = model(ids, attention_mask=mask)
        if sae.cfg.is_transcoder:
            stash: dict = {}

            def grab(a: Tensor) -> Tensor:
                stash["x"] = a
                return a
            ivs = {site: Replace(grab, "read-input"),
                   sae.cfg.out_site: Replace(lambda a: _after_bos(a, lambda t: sae(
                       stash["x"][:, 1:].reshape(*t.shape[:2], -1)).to(t.dtype).reshape(t.shape)), "transcoder")}
            zero_site = sae.cfg.out_site
        else:
            splice = SAESplice(sae, edit=lambda z: z, keep_error=False)
            ivs = {site: Replace(lambda a: _after_bos(a, splice), "sae-recon")}
            zero_site = site
        spliced = model.run_with_interventions(ids, ivs, attention_mask=mask)
        zeroed = model.run_with_interventions(ids, {zero_site: Replace(lambda a: _after_bos(a, Zero()), "zero")},
                                              attention_mask=mask)
        for key, lg in (("clean", clean), ("sae", spliced), ("zero", zeroed)):
            s, n = _ce(lg, ids, mask)
            sums[key] += float(s)
        lp_c = torch.log_softmax(clean.float(), -1)
        lp_s = torch.log_softmax(spliced.float(), -1)
        kl = (lp_c.exp() * (lp_c - lp_s)).sum(-1)  # [b p]
        m = mask.bool().clone()
        m[:, 0] = False  # BOS is never spliced, so its KL is 0: leave it out of the mean
        sums["kl"] += float(kl[m].sum())
        n_tok += int(n)
        n_kl += int(m.sum())
    ce = {k: sums[k] / max(n_tok, 1) for k in ("clean", "sae", "zero")}
    return {"ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero": ce["zero"],
            "loss_recovered": loss_recovered(ce["clean"], ce["sae"], ce["zero"]), "kl": sums["kl"] / max(n_kl, 1)}


@torch.no_grad()
def top_examples(sae: SAE, acts: Tensor, n: int = 10, *, latents: Optional[Tensor] = None,
                 batch_size: int = 4096) -> tuple[Tensor, Tensor]:
    """``(values [n_latents n], rows [n_latents n])``: the rows of ``acts`` that activate each latent most.

    Map rows to text with a harvest's ``where`` and ``tokens``. Values of 0 mean fewer than
    ``n`` rows fired.
    """
    lat = latents if latents is not None else torch.arange(sae.cfg.d_sae)
    lat = lat.to(sae.device)
    best_v = torch.full((lat.numel(), n), float("-inf"), device=sae.device)
    best_i = torch.full((lat.numel(), n), -1, dtype=torch.long, device=sae.device)
    for a in range(0, acts.shape[0], batch_size):
        z = sae.encode(acts[a:a + batch_size].to(sae.device).float()).index_select(-1, lat).T  # [lat b]
        rows = torch.arange(a, a + z.shape[1], device=sae.device).expand_as(z)
        v = torch.cat([best_v, z], 1)
        i = torch.cat([best_i, rows], 1)
        top = v.topk(min(n, v.shape[1]), dim=1)
        best_v, best_i = top.values, i.gather(1, top.indices)
    return best_v.clamp_min(0), best_i


def evaluate(sae: SAE, acts: Tensor, targets: Optional[Tensor] = None, *, model: Optional["HookedModel"] = None,
             docs: Optional[Sequence[str]] = None, n_contexts: int = 32, ctx_len: int = 128,
             corpus: Optional[str] = None, dense_freq: float = 0.1) -> EvalResult:
    """All figures: activation metrics, and model metrics when ``model`` and ``docs`` are given."""
    figs = eval_activations(sae, acts, targets, dense_freq=dense_freq)
    if model is not None and docs is not None:
        figs.update(eval_in_model(sae, model, docs, n_contexts=n_contexts, ctx_len=ctx_len))
    return EvalResult(**figs, corpus=corpus)


__all__ = ["l0", "fvu", "loss_recovered", "EvalResult", "eval_activations", "eval_in_model", "top_examples",
           "evaluate"]
