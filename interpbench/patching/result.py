"""Result records of patching sweeps (exact and attribution), with ``to_dict``/``from_dict``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor

from ..metrics import MetricSpec, normalized

SCHEMA_VERSION = 1


def _t(x) -> Optional[list]:
    return None if x is None else x.detach().float().cpu().tolist()


@dataclass(frozen=True)
class PatchResult:
    """The metric of every patched run of one sweep, on the model's device until ``to_dict``."""

    values: Tensor
    """Metric of each patched run: ``[n_layers, n_pos]``, ``[n_layers, n_heads]``, ``[n_layers, n_pos, n_heads]``
    or ``[n_layers, d_mlp]`` (see :mod:`interpbench.patching.kinds`); for named metrics the mean over prompts."""
    clean: Tensor
    """Metric of the unpatched clean run (per prompt ``[batch]`` for named metrics, else a scalar)."""
    corrupted: Tensor
    """Metric of the unpatched corrupted run (same layout as ``clean``)."""
    kind: str
    """Component kind, e.g. ``resid_pre`` or ``head_out``."""
    site: str
    """Site name template, e.g. ``blocks.{l}.hook_resid_pre``."""
    axes: tuple
    """Axis names of ``values``, e.g. ``('layer', 'pos')``."""
    labels: dict
    """Axis name -> tick labels (layers, positions / token strings, heads)."""
    metric: MetricSpec
    """Metric and conventions (direction, aggregate, position, normalised or not)."""
    method: str
    """``fast`` (batched, prefix reuse), ``naive`` (one full forward per patch) or ``attribution``."""
    per_prompt: Optional[Tensor] = None
    """``values`` before averaging over prompts ``[..., batch]`` (named metrics only)."""
    n_forwards: int = 0
    """Forward passes run (batched forwards count once)."""
    meta: dict = field(default_factory=dict)
    """Extra provenance (timings, data description, batch sizes)."""
    schema_version: int = SCHEMA_VERSION
    """Record schema version."""

    def normalized(self) -> Tensor:
        """(patched − corrupted)/(clean − corrupted), pooled with ``metric.aggregate``."""
        if self.per_prompt is not None and self.clean.ndim == 1:
            return normalized(self.per_prompt, self.clean, self.corrupted, self.metric.aggregate)
        return (self.values - self.corrupted) / (self.clean - self.corrupted)

    def effect(self) -> Tensor:
        """Change of the metric against the unpatched run the patch went into (corrupted when denoising)."""
        base = self.corrupted if self.metric.direction == "denoise" else self.clean
        return self.values - base.mean()

    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "kind": self.kind, "site": self.site, "axes": list(self.axes),
                "labels": self.labels, "metric": self.metric.to_dict(), "method": self.method,
                "values": _t(self.values), "clean": _t(self.clean), "corrupted": _t(self.corrupted),
                "per_prompt": _t(self.per_prompt), "normalized": _t(self.normalized()),
                "n_forwards": self.n_forwards, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "PatchResult":
        t = lambda x: None if x is None else torch.tensor(x)  # noqa: E731
        return cls(values=t(d["values"]), clean=t(d["clean"]), corrupted=t(d["corrupted"]), kind=d["kind"],
                   site=d["site"], axes=tuple(d["axes"]), labels=d["labels"], metric=MetricSpec.from_dict(d["metric"]),
                   method=d["method"], per_prompt=t(d.get("per_prompt")), n_forwards=d.get("n_forwards", 0),
                   meta=d.get("meta", {}), schema_version=d.get("schema_version", SCHEMA_VERSION))
