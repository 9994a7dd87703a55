"""Streaming per-unit statistics (baukit style): moments, tail quantiles, top-k examples, IoU counts.

Every statistic is updated batch by batch on the activations' device, merged exactly
across batches or workers (``a.merge(b)``), and saved / loaded as safetensors + JSON.

1. :class:`Moments` — count, mean, M2 (Welford per batch, Chan et al. 1979 merge), min, max.
2. :class:`TailQuantile` — the ``m`` largest values of every unit (exact top-``m`` merge)
   plus the count ``n``. A quantile ``q`` whose linear-interpolation neighbours (the
   ranks ``floor(q (n-1))`` and ``ceil(q (n-1))``) fall inside the kept tail is **exact**:
   it equals ``torch.quantile(x, q)``. With the Network Dissection default (top 0.5 %,
   ``q = 0.995``) that holds while ``n * 0.005 < m - 1``; beyond it the estimate falls
   back to the ``m``-th largest value (an upper bound) and ``exact(q)`` says so.
3. :class:`TopK` — per unit, the ``k`` largest per-example scores and the example ids
   (exact merge).
4. :class:`IoUCounts` — for thresholds ``t_u``: per unit × concept the intersection
   ``|{a_u > t_u} ∩ M_c|``, plus ``|{a_u > t_u}|`` and ``|M_c|`` (int64, exact), so
   ``IoU = I / (A + C - I)``.

All statistics are sums or exact order statistics, so ``merge`` of two halves equals one
pass over the whole (tested). :func:`save_stats` / :func:`load_stats` write atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..errors import ShapeError
from ..paths import atomic_write_bytes, atomic_write_text

STATS_SCHEMA_VERSION = 1


def _check2d(x: Tensor, n_units: Optional[int], what: str) -> None:
    if x.ndim != 2:
        raise ShapeError(f"{what} takes a 2-D [samples units] tensor, got shape {tuple(x.shape)}")
    if n_units is not None and x.shape[1] != n_units:
        raise ShapeError(f"{what} was built for {n_units} units but got {x.shape[1]}")


class Moments:
    """Running count / mean / variance / min / max per unit (Chan's parallel merge)."""

    def __init__(self, n_units: int, device=None):
        self.n = torch.zeros((), dtype=torch.float64, device=device)
        self.mean = torch.zeros(n_units, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(n_units, dtype=torch.float64, device=device)
        self.min = torch.full((n_units,), float("inf"), dtype=torch.float64, device=device)
        self.max = torch.full((n_units,), float("-inf"), dtype=torch.float64, device=device)

    def update(self, x: Float[Tensor, "samples units"]) -> None:
        _check2d(x, self.mean.shape[0], "Moments.update")
        x = x.to(torch.float64)
        b = Moments(x.shape[1], x.device)
        b.n = torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device)
        b.mean = x.mean(0)
        b.m2 = ((x - b.mean) ** 2).sum(0)
        b.min, b.max = x.min(0).values, x.max(0).values
        self.merge(b)

    def merge(self, o: "Moments") -> "Moments":
        n = self.n + o.n
        delta = o.mean - self.mean
        safe = torch.where(n > 0, n, torch.ones_like(n))
        self.mean = self.mean + delta * (o.n / safe)
        self.m2 = self.m2 + o.m2 + delta ** 2 * (self.n * o.n / safe)
        self.n = n
        self.min = torch.minimum(self.min, o.min)
        self.max = torch.maximum(self.max, o.max)
        return self

    @property
    def var(self) -> Tensor:
        """Unbiased variance per unit."""
        return self.m2 / (self.n - 1).clamp(min=1)

    def state(self) -> dict[str, Tensor]:
        return {"n": self.n, "mean": self.mean, "m2": self.m2, "min": self.min, "max": self.max}

    @classmethod
    def from_state(cls, s: dict[str, Tensor]) -> "Moments":
        m = cls(s["mean"].shape[0], s["mean"].device)
        m.n, m.mean, m.m2, m.min, m.max = s["n"], s["mean"], s["m2"], s["min"], s["max"]
        return m


class TailQuantile:
    """The ``m`` largest values per unit: exact upper quantiles (see module docstring)."""

    def __init__(self, n_units: int, m: int = 4096, device=None, dtype=torch.float32):
        self.m = m
        self.n = 0
        self.top = torch.empty(0, n_units, dtype=dtype, device=device)  # [kept units], descending

    def update(self, x: Float[Tensor, "samples units"]) -> None:
        _check2d(x, self.top.shape[1], "TailQuantile.update")
        self.n += x.shape[0]
        both = torch.cat([self.top, x.to(self.top.dtype)], 0)
        k = min(self.m, both.shape[0])
        self.top = both.topk(k, dim=0).values  # sorted descending along samples

    def merge(self, o: "TailQuantile") -> "TailQuantile":
        self.n += o.n
        both = torch.cat([self.top, o.top], 0)
        self.top = both.topk(min(self.m, both.shape[0]), dim=0).values
        return self

    def exact(self, q: float) -> bool:
        """Whether :meth:`quantile` at ``q`` equals ``torch.quantile`` on all the data seen."""
        lo = int(q * (self.n - 1))
        return (self.n - 1 - lo) < self.top.shape[0]

    def quantile(self, q: float) -> Float[Tensor, "units"]:
        """Linear-interpolated quantile ``q`` per unit (torch.quantile's default), clamped to the tail."""
        if self.n == 0:
            raise ShapeError("TailQuantile has seen no data; run at least one batch first")
        pos = q * (self.n - 1)
        lo, frac = int(pos), pos - int(pos)
        kept = self.top.shape[0]
        i_lo = min(self.n - 1 - lo, kept - 1)  # rank from the top
        i_hi = min(self.n - 1 - min(lo + 1, self.n - 1), kept - 1)
        v_lo, v_hi = self.top[i_lo], self.top[i_hi]
        return v_lo + frac * (v_hi - v_lo)

    def state(self) -> dict[str, Tensor]:
        return {"top": self.top, "n": torch.tensor(self.n), "m": torch.tensor(self.m)}

    @classmethod
    def from_state(cls, s: dict[str, Tensor]) -> "TailQuantile":
        t = cls(s["top"].shape[1], int(s["m"]), s["top"].device, s["top"].dtype)
        t.top, t.n = s["top"], int(s["n"])
        return t


class TopK:
    """Per unit, the ``k`` largest per-example scores and their example ids."""

    def __init__(self, n_units: int, k: int = 16, device=None):
        self.k = k
        self.values = torch.empty(0, n_units, device=device)
        self.ids = torch.empty(0, n_units, dtype=torch.long, device=device)

    def update(self, scores: Float[Tensor, "examples units"], ids: Tensor) -> None:
        _check2d(scores, self.values.shape[1], "TopK.update")
        ids = ids.to(self.ids.device).long()[:, None].expand(-1, scores.shape[1])
        self._keep(torch.cat([self.values, scores.to(self.values.dtype)]), torch.cat([self.ids, ids]))

    def _keep(self, v: Tensor, i: Tensor) -> None:
        # ties broken by smaller example id: sort by id first, then a stable sort by value
        order = i.argsort(dim=0, stable=True)
        v, i = v.gather(0, order), i.gather(0, order)
        order = v.argsort(dim=0, descending=True, stable=True)[: self.k]
        self.values, self.ids = v.gather(0, order), i.gather(0, order)

    def merge(self, o: "TopK") -> "TopK":
        self._keep(torch.cat([self.values, o.values]), torch.cat([self.ids, o.ids]))
        return self

    def state(self) -> dict[str, Tensor]:
        return {"values": self.values, "ids": self.ids, "k": torch.tensor(self.k)}

    @classmethod
    def from_state(cls, s: dict[str, Tensor]) -> "TopK":
        t = cls(s["values"].shape[1], int(s["k"]), s["values"].device)
        t.values, t.ids = s["values"], s["ids"]
        return t


class IoUCounts:
    """Exact unit × concept intersection counts for fixed per-unit thresholds."""

    def __init__(self, thresholds: Float[Tensor, "units"], n_concepts: int):
        self.thresholds = thresholds
        dev = thresholds.device
        self.inter = torch.zeros(thresholds.shape[0], n_concepts, dtype=torch.int64, device=dev)
        self.unit = torch.zeros(thresholds.shape[0], dtype=torch.int64, device=dev)
        self.concept = torch.zeros(n_concepts, dtype=torch.int64, device=dev)

    def update(self, acts: Float[Tensor, "samples units"], masks: Bool[Tensor, "samples concepts"]) -> None:
        _check2d(acts, self.thresholds.shape[0], "IoUCounts.update")
        _check2d(masks, self.concept.shape[0], "IoUCounts.update (concept masks)")
        if masks.shape[0] != acts.shape[0]:
            raise ShapeError(f"concept masks cover {masks.shape[0]} samples but the activations {acts.shape[0]}; "
                             f"masks must have one row per token / pixel of the inputs")
        on = acts > self.thresholds.to(acts.dtype)
        # float32 sums are exact below 2**24 samples per batch
        self.inter += (on.T.float() @ masks.float()).round().long()
        self.unit += on.sum(0)
        self.concept += masks.sum(0)

    def merge(self, o: "IoUCounts") -> "IoUCounts":
        if not torch.equal(self.thresholds, o.thresholds):
            raise ShapeError("IoUCounts with different thresholds cannot be merged")
        self.inter += o.inter
        self.unit += o.unit
        self.concept += o.concept
        return self

    def iou(self) -> Float[Tensor, "units concepts"]:
        union = self.unit[:, None] + self.concept[None, :] - self.inter
        return self.inter.double() / union.clamp(min=1).double()

    def state(self) -> dict[str, Tensor]:
        return {"thresholds": self.thresholds, "inter": self.inter, "unit": self.unit, "concept": self.concept}

    @classmethod
    def from_state(cls, s: dict[str, Tensor]) -> "IoUCounts":
        c = cls(s["thresholds"], s["concept"].shape[0])
        c.inter, c.unit, c.concept = s["inter"], s["unit"], s["concept"]
        return c


_KINDS = {"Moments": Moments, "TailQuantile": TailQuantile, "TopK": TopK, "IoUCounts": IoUCounts}


@dataclass(frozen=True)
class StatsMeta:
    """What a saved statistics file holds."""

    kind: str
    """Class name: Moments, TailQuantile, TopK or IoUCounts."""
    done: int = 0
    """Batches already folded in (a resumed job skips these)."""
    info: Optional[dict] = None
    """Free provenance (model, site, data hash)."""

    def to_dict(self) -> dict:
        return {"schema_version": STATS_SCHEMA_VERSION, "kind": self.kind, "done": self.done, "info": self.info or {}}

    @classmethod
    def from_dict(cls, d: dict) -> "StatsMeta":
        if d.get("schema_version") != STATS_SCHEMA_VERSION:
            raise ShapeError(f"statistics file has schema_version {d.get('schema_version')!r}; "
                             f"expected {STATS_SCHEMA_VERSION} (delete the cache to recompute)")
        return cls(d["kind"], int(d.get("done", 0)), d.get("info"))


def _with(path: Path, suffix: str) -> Path:
    return path.parent / (path.name + suffix)  # site names contain dots; never replace a "suffix"


def save_stats(stat, path: Path, done: int = 0, info: Optional[dict] = None) -> None:
    """Write ``PATH.json`` (kind, provenance) and ``PATH.safetensors`` (state + batches done), each atomically."""
    from safetensors.torch import save

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in stat.state().items()}
    tensors["_done"] = torch.tensor(done)  # progress lives in the same atomic file as the state
    atomic_write_text(_with(path, ".json"), json.dumps(StatsMeta(type(stat).__name__, done, info).to_dict()))
    atomic_write_bytes(_with(path, ".safetensors"), save(tensors))


def load_stats(path: Path, device=None):
    """``(stat, meta)`` from :func:`save_stats`, or ``(None, None)`` if absent."""
    from safetensors.torch import load

    path = Path(path)
    if not _with(path, ".json").exists() or not _with(path, ".safetensors").exists():
        return None, None
    meta = StatsMeta.from_dict(json.loads(_with(path, ".json").read_text()))
    state = {k: v.to(device) if device is not None else v
             for k, v in load(_with(path, ".safetensors").read_bytes()).items()}
    done = int(state.pop("_done"))
    return _KINDS[meta.kind].from_state(state), StatsMeta(meta.kind, done, meta.info)
