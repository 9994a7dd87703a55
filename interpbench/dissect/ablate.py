"""Unit interventions (GAN Dissection, Bau et al. 2019): switch a set of units off or on and
measure the average causal effect on an output, with bootstrap confidence intervals.

1. :class:`SetUnits` is an :class:`~interpbench.interventions.Intervention` that writes a
   value into chosen indices of one axis of the site tensor (``channel`` for conv maps,
   the last axis for MLP neurons / latents): ``zero`` (0), ``mean`` (a per-unit mean
   given by the caller) or ``insert`` (a high value, e.g. the unit's 99.5 % quantile x k).
2. ``effect[i] = metric(intervened)[i] - metric(clean)[i]`` per example; the average causal
   effect (ACE) is the mean, its CI a percentile bootstrap over examples (seeded).
3. :func:`rank_units` intervenes on each unit alone and ranks by ACE;
   :func:`ablation_curve` intervenes on the top-``n`` units for growing ``n``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from ..errors import InterpbenchError
from ..interventions import Intervention


@dataclass(frozen=True, eq=False)
class SetUnits(Intervention):
    """Write ``values`` (one per unit, or a scalar) into ``units`` along axis ``axis``."""

    units: tuple
    """Unit indices along ``axis``."""
    axis: int = -1
    """Unit axis of the site tensor (1 for ``[batch channel h w]``, -1 for ``[batch pos units]``)."""
    values: Optional[Tensor] = None
    """Per-unit values ``[len(units)]`` (None: zero)."""

    def __call__(self, act: Tensor) -> Tensor:
        out = act.clone()
        idx = torch.tensor(self.units, device=act.device, dtype=torch.long)
        view = out.movedim(self.axis, -1)  # unit axis last (a view into out)
        if self.values is None:
            view[..., idx] = 0
        else:
            view[..., idx] = self.values.to(act.device, act.dtype)
        return out

    @property
    def label(self) -> str:
        return f"SetUnits({len(self.units)})"


@dataclass(frozen=True)
class Effect:
    """Average causal effect of one intervention."""

    units: tuple
    """Intervened units."""
    mode: str
    """``zero``, ``mean`` or ``insert``."""
    ace: float
    """Mean over examples of metric(intervened) - metric(clean)."""
    ci: tuple
    """95 % percentile-bootstrap interval of the ACE."""
    n: int
    """Examples averaged over."""

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(x: Tensor, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``x [n]`` (seeded, vectorised)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, x.shape[0], (n_boot, x.shape[0]), generator=g).to(x.device)
    means = x[idx].mean(1)
    lo, hi = torch.quantile(means.double(), torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64,
                                                          device=x.device)).tolist()
    return lo, hi


def unit_effect(model, site: str, units: Sequence[int], inputs, metric: Callable[[Tensor], Tensor],
                mode: str = "zero", values: Optional[Tensor] = None, axis: int = -1,
                clean: Optional[Tensor] = None) -> tuple[Effect, Tensor]:
    """ACE of setting ``units`` at ``site`` (step 2); returns the record and per-example effects."""
    if mode not in ("zero", "mean", "insert"):
        raise InterpbenchError(f"unknown unit intervention mode {mode!r}; use zero, mean or insert")
    if mode != "zero" and values is None:
        raise InterpbenchError(f"mode {mode!r} needs per-unit values (means or insertion levels)")
    vals = None if mode == "zero" else values[list(units)]
    with torch.no_grad():
        if clean is None:
            clean = metric(model(inputs))
        new = metric(model.run_with_interventions(inputs, {site: SetUnits(tuple(units), axis, vals)}))
    diff = (new - clean).float()
    return Effect(tuple(int(u) for u in units), mode, float(diff.mean()), bootstrap_ci(diff), diff.shape[0]), diff


def rank_units(model, site: str, n_units: int, inputs, metric, mode: str = "zero",
               values: Optional[Tensor] = None, axis: int = -1) -> list[Effect]:
    """Every unit alone, sorted by ACE (most negative first for ablations, largest for insertions)."""
    with torch.no_grad():
        clean = metric(model(inputs))
    effs = [unit_effect(model, site, [u], inputs, metric, mode, values, axis, clean)[0] for u in range(n_units)]
    return sorted(effs, key=lambda e: e.ace if mode != "insert" else -e.ace)


def ablation_curve(model, site: str, ranked: Sequence[int], inputs, metric, sizes: Sequence[int],
                   mode: str = "zero", values: Optional[Tensor] = None, axis: int = -1) -> list[Effect]:
    """ACE of intervening on the top-``n`` ranked units for each ``n`` in ``sizes`` (step 3)."""
    with torch.no_grad():
        clean = metric(model(inputs))
    return [unit_effect(model, site, list(ranked[:n]), inputs, metric, mode, values, axis, clean)[0]
            for n in sizes if n <= len(ranked)]
