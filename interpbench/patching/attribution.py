"""Attribution patching (Nanda 2023; Syed et al. 2023): first-order estimates of patching.

For a site activation ``a`` the effect of patching ``a_src`` into the base run is
approximated by ``(a_src − a_base) · ∂metric/∂a`` evaluated at the base run (corrupted
when denoising). Every component kind of :mod:`interpbench.patching.kinds` is estimated
in a constant number of passes, whatever the grid size:

1. One forward of the source prompt caching every requested site (no grad).
2. One forward of the base prompt with a zero tensor ``ε`` added at every requested site
   (``Add(ε)``, requires grad) and the sites cached, then one backward of the metric
   (summed over prompts for named metrics, so each prompt gets its own gradient):
   ``∂metric/∂a = ε.grad``.
3. Per element: sum ``(a_src − a_base) * grad`` over the axes the element covers
   (``d_model`` for a position; positions and ``d_head`` for a head over all positions;
   ``d_head`` for a head at one position; positions for a neuron), add the base metric, and
   lay the numbers out exactly like the exact sweep so the two can be compared cell by cell.
4. :func:`attribution_vs_exact` runs both and reports their Pearson and Spearman correlation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import InterpbenchError, ShapeError
from ..interventions import Add
from ..metrics import MetricSpec
from .activation import MetricLike, _Metric, activation_patch
from .kinds import get_kind
from .result import PatchResult


def _reduce(kind, prod: Tensor) -> Tensor:
    """Per-prompt attribution ``[n, *grid-after-layer]`` from ``prod [n, pos, ...]``."""
    if kind.grid == "pos":
        return prod.flatten(2).sum(-1)  # [n T]
    if kind.grid == "head":
        return prod.sum((1, 3))  # [n T H dh] -> [n H]
    if kind.grid == "pos_head":
        return prod.sum(-1)  # [n T H]
    return prod.sum(1)  # [n T D] -> [n D]


def attribution_patch(model, clean_tokens: Tensor, corrupted_tokens: Tensor, *, sites: Sequence[str] = ("resid_pre",),
                      metric: MetricLike, direction: str = "denoise", answer=None, wrong=None, pos: int = -1,
                      layers: Optional[Sequence[int]] = None,
                      aggregate: str = "mean_of_differences") -> dict[str, PatchResult]:
    """First-order patching estimates for each kind in ``sites`` (one forward + one forward/backward)."""
    t0 = time.perf_counter()
    kinds = [get_kind(s) for s in ([sites] if isinstance(sites, str) else sites)]
    clean = model.to_tokens(clean_tokens)
    corrupted = model.to_tokens(corrupted_tokens)
    if clean.shape != corrupted.shape:
        raise ShapeError(f"clean {tuple(clean.shape)} and corrupted {tuple(corrupted.shape)} tokens differ in shape")
    if direction not in ("denoise", "noise"):
        raise InterpbenchError(f"direction must be 'denoise' or 'noise', got {direction!r}")
    n, T = clean.shape
    layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
    base_tok, src_tok = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    m = _Metric(metric, answer, wrong, pos, n, model.device)
    names = list(dict.fromkeys(k.site(x) for k in kinds for x in layers))
    with torch.no_grad(), model.trace(cache=names) as tr_s:
        src_logits = model(src_tok)
    eps = {s: torch.zeros_like(tr_s.cache[s], requires_grad=True) for s in names}
    with torch.enable_grad():
        with model.trace(cache=names, interventions={s: Add(e) for s, e in eps.items()}) as tr_b:
            base_logits = model(base_tok)
        clean_logits = src_logits if direction == "denoise" else base_logits.detach()
        m.clean_logits = clean_logits
        val = m(base_logits, 1)[0]  # [n] named, scalar callable
        grads = torch.autograd.grad(val.sum(), [eps[s] for s in names], allow_unused=True)
    grad = {s: (g if g is not None else torch.zeros_like(eps[s])) for s, g in zip(names, grads)}
    base_val = val.detach()
    with torch.no_grad():
        other = m(src_logits, 1)[0]  # the unpatched source run
    clean_val, corr_val = (other, base_val) if direction == "denoise" else (base_val, other)
    out: dict[str, PatchResult] = {}
    for kind in kinds:
        per = torch.stack([_reduce(kind, (tr_s.cache[kind.site(x)] - tr_b.cache[kind.site(x)]) * grad[kind.site(x)])
                           for x in layers])  # [L n ...]
        per = per.movedim(1, -1)  # [L ... n]
        if m.name is not None:
            per = per + base_val  # estimated metric per prompt
            vals = per.mean(-1)
        else:
            vals = base_val + per.sum(-1)
            per = None
        site_shape = tuple(tr_s.cache[kind.site(layers[0])].shape[1:])
        labels = {"layer": layers, "pos": list(range(T)),
                  "tokens": [model.tokenizer.decode([t]) for t in clean[0].tolist()]}
        if kind.grid in ("head", "pos_head"):
            labels["head"] = list(range(site_shape[1]))
        if kind.grid == "neuron":
            labels["neuron"] = list(range(site_shape[-1]))
        out[kind.name] = PatchResult(vals, clean_val, corr_val, kind.name, kind.hook, kind.axes(), labels,
                                     MetricSpec(m.description(), direction, aggregate, pos), "attribution", per, 2,
                                     {"seconds": time.perf_counter() - t0, "n_prompts": n, "seq_len": T,
                                      "backward_passes": 1})
    return out


def _rank(x: Tensor) -> Tensor:
    r = torch.empty_like(x)
    r[x.argsort()] = torch.arange(x.numel(), device=x.device, dtype=x.dtype)
    return r


def correlation(a: Tensor, b: Tensor) -> dict[str, float]:
    """Pearson and Spearman correlation of two equally shaped grids (flattened)."""
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    pear = torch.corrcoef(torch.stack([a, b]))[0, 1]
    spear = torch.corrcoef(torch.stack([_rank(a), _rank(b)]))[0, 1]
    return {"pearson": float(pear), "spearman": float(spear)}


@dataclass(frozen=True)
class AttributionComparison:
    """Attribution patching next to exact patching on the same grid."""

    attribution: PatchResult
    """First-order estimates (``method='attribution'``)."""
    exact: PatchResult
    """Exact patching (``method='fast'`` or ``'naive'``)."""
    pearson: float
    """Pearson correlation of the two value grids."""
    spearman: float
    """Spearman (rank) correlation of the two value grids."""
    schema_version: int = 1
    """Record schema version."""

    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "pearson": self.pearson, "spearman": self.spearman,
                "attribution": self.attribution.to_dict(), "exact": self.exact.to_dict()}


def attribution_vs_exact(model, clean_tokens: Tensor, corrupted_tokens: Tensor, *, site: str = "resid_pre",
                         metric: MetricLike, direction: str = "denoise", answer=None, wrong=None, pos: int = -1,
                         layers: Optional[Sequence[int]] = None, method: str = "fast",
                         **kw) -> AttributionComparison:
    """Attribution and exact patching of one kind, with their correlation."""
    attr = attribution_patch(model, clean_tokens, corrupted_tokens, sites=[site], metric=metric, direction=direction,
                             answer=answer, wrong=wrong, pos=pos, layers=layers)[get_kind(site).name]
    exact = activation_patch(model, clean_tokens, corrupted_tokens, site=site, metric=metric, direction=direction,
                             answer=answer, wrong=wrong, pos=pos, layers=layers, method=method, **kw)
    c = correlation(attr.values, exact.values)
    return AttributionComparison(attr, exact, c["pearson"], c["spearman"])
