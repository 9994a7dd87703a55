"""Dissection engine: two streaming passes over a dataset, then labels (Bau et al. 2017).

Inputs are modality-free: ``batches()`` yields :class:`Batch` records (model inputs, a
boolean concept mask with one row per *sample* — a token or a pixel — and the example id of
each row), and ``acts_fn(inputs)`` returns ``{site: [samples units]}`` aligned with those
rows (text: valid token positions; vision: activation maps upsampled to the mask
resolution).

1. Pass 1, per site: :class:`~.stats.TailQuantile` (threshold at quantile ``q``, default
   0.995 = top 0.5 %), :class:`~.stats.Moments` and :class:`~.stats.TopK` (per-example
   max activation).
2. Thresholds ``t_u = quantile_q(a_u)``.
3. Pass 2, per site: :class:`~.stats.IoUCounts` of ``{a_u > t_u}`` against every concept
   mask; also keeps the binary masks of the first ``comp_samples`` rows for the
   compositional search.
4. Labels: best concept per unit when its IoU exceeds ``iou_threshold`` (default 0.04);
   compositional formulas for the ``comp_units`` units with the highest best IoU.

With ``cache`` set, every statistic is saved (safetensors + JSON, atomically) every
``save_every`` batches and at the end of each pass; a restarted run loads them and skips
the batches already folded in (pass 2 is cached only when no compositional labels are
asked for, since those need the binary masks in memory). The cache key must change when
the data or model does — callers put a hash of both into the directory name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
from torch import Tensor

from ..errors import InterpbenchError, ShapeError
from .labels import UnitLabel, compositional_label, label_units
from .stats import IoUCounts, Moments, TailQuantile, TopK, load_stats, save_stats


@dataclass(frozen=True)
class DissectConfig:
    """Settings of a dissection run."""

    quantile: float = 0.995
    """Activation threshold quantile (0.995 = the top 0.5 % of samples, as in Network Dissection)."""
    iou_threshold: float = 0.04
    """A unit gets its best concept as label when the IoU exceeds this."""
    tail: int = 4096
    """Values kept per unit for the quantile (exact while samples x (1-q) < tail - 1)."""
    topk: int = 8
    """Top-activating examples kept per unit."""
    comp_units: int = 0
    """Units (highest best IoU first) that get a compositional label; 0 = none."""
    comp_samples: int = 200_000
    """Rows kept in memory for the compositional search."""
    beam: int = 5
    """Beam width of the compositional search."""
    max_length: int = 3
    """Maximum number of concepts in a formula."""
    save_every: int = 20
    """Batches between cache checkpoints."""

    def __post_init__(self) -> None:
        if not 0.0 < self.quantile < 1.0:
            raise InterpbenchError(f"quantile must lie in (0, 1), got {self.quantile}")
        if self.tail < 2 or self.topk < 1 or self.beam < 1 or self.max_length < 1:
            raise InterpbenchError("tail >= 2, topk >= 1, beam >= 1 and max_length >= 1 are required")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Batch:
    """One batch of a dissection dataset."""

    inputs: Any
    """What ``acts_fn`` takes (token ids + attention mask, or images)."""
    masks: Tensor
    """Bool ``[samples concepts]``: concept membership of every token / pixel row."""
    example_ids: Tensor
    """Long ``[samples]``: the dataset example each row belongs to (for top-k examples)."""


@dataclass
class SiteDissection:
    """Everything computed for one site (kept in memory; the CLI writes it to the run dir)."""

    site: str
    thresholds: Tensor
    iou: Tensor
    moments: Moments
    topk: TopK
    exact_quantile: bool
    labels: list[UnitLabel] = field(default_factory=list)


def _site_key(site: str) -> str:
    return site.replace("/", "_").replace("*", "_")


def _per_example_max(acts: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """``[examples units]`` max activation per example id and the sorted unique ids."""
    uniq, inv = ids.unique(sorted=True, return_inverse=True)
    out = torch.full((uniq.shape[0], acts.shape[1]), float("-inf"), device=acts.device, dtype=acts.dtype)
    out.scatter_reduce_(0, inv[:, None].expand_as(acts), acts, reduce="amax")
    return out, uniq


def _pass(batches: Callable[[], Iterable[Batch]], sites: Sequence[str], make: Callable[[str, Tensor], Any],
          update: Callable[[Any, Tensor, Batch], None], acts_fn, cache: Optional[Path], tag: str,
          save_every: int) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    done = 0
    if cache is not None:
        loaded = {s: load_stats(cache / f"{_site_key(s)}.{tag}") for s in sites}
        if all(st is not None for st, _ in loaded.values()):
            stats = {s: st for s, (st, _) in loaded.items()}
            done = min(m.done for _, m in loaded.values())
            if len({m.done for _, m in loaded.values()}) > 1:  # inconsistent checkpoint: restart the pass
                stats, done = {}, 0
    i = -1
    for i, batch in enumerate(batches()):
        if i < done:
            continue
        acts = acts_fn(batch.inputs)
        for s in sites:
            a = acts[s]
            if a.shape[0] != batch.masks.shape[0]:
                raise ShapeError(f"site {s} gives {a.shape[0]} rows but the concept masks have {batch.masks.shape[0]}; "
                                 f"masks must have one row per token / pixel of the inputs")
            if s not in stats:
                stats[s] = make(s, a)
            update(stats[s], a, batch)
        if cache is not None and (i + 1) % save_every == 0:
            for s in sites:
                save_stats(stats[s], cache / f"{_site_key(s)}.{tag}", done=i + 1)
    if not stats:
        raise InterpbenchError("the dissection dataset yielded no batches; give it at least one input")
    if cache is not None and i + 1 > done:
        for s in sites:
            save_stats(stats[s], cache / f"{_site_key(s)}.{tag}", done=i + 1)
    return stats


def dissect(acts_fn: Callable[[Any], dict[str, Tensor]], batches: Callable[[], Iterable[Batch]],
            sites: Sequence[str], concepts: Sequence[str], cfg: DissectConfig = DissectConfig(),
            cache: Optional[Path] = None) -> dict[str, SiteDissection]:
    """Run steps 1-4 of the module docstring for every site."""
    if not concepts:
        raise InterpbenchError("no concepts given; pass a concept set with at least one concept")
    if cache is not None:
        Path(cache).mkdir(parents=True, exist_ok=True)

    class _P1:
        def __init__(self, a: Tensor):
            self.q = TailQuantile(a.shape[1], cfg.tail, a.device)
            self.m = Moments(a.shape[1], a.device)
            self.t = TopK(a.shape[1], cfg.topk, a.device)

    # pass 1 keeps three stats per site; checkpoint them under separate tags
    def make1(s, a):
        return _P1(a)

    def upd1(st, a, b):
        st.q.update(a)
        st.m.update(a)
        mx, ids = _per_example_max(a, b.example_ids.to(a.device))
        st.t.update(mx, ids)

    p1 = _pass_multi(batches, sites, make1, upd1, acts_fn, cache, cfg.save_every)
    thresholds = {s: p1[s].q.quantile(cfg.quantile) for s in sites}
    keep: dict[str, list] = {s: [] for s in sites}
    masks_keep: list[Tensor] = []
    kept_rows = [0]

    def make2(s, a):
        return IoUCounts(thresholds[s].to(a.device), len(concepts))

    def upd2(st, a, b):
        st.update(a, b.masks.to(a.device))
        if cfg.comp_units and kept_rows[0] < cfg.comp_samples:
            keep[st_site[id(st)]].append(a > st.thresholds)

    st_site: dict[int, str] = {}

    def make2_named(s, a):
        st = make2(s, a)
        st_site[id(st)] = s
        return st

    def batches2():
        for b in batches():
            yield b
            if cfg.comp_units and kept_rows[0] < cfg.comp_samples:
                masks_keep.append(b.masks)
                kept_rows[0] += b.masks.shape[0]

    comp_cache = None if cfg.comp_units else cache  # the compositional search needs a full in-memory pass
    p2 = _pass(batches2, sites, make2_named, upd2, acts_fn, comp_cache, "iou", cfg.save_every)
    out = {}
    for s in sites:
        iou = p2[s].iou()
        labels = label_units(iou, concepts, thresholds[s], s, cfg.iou_threshold)
        if cfg.comp_units and keep[s]:
            on = torch.cat(keep[s])
            cm = torch.cat(masks_keep).to(on.device)[: on.shape[0]]
            order = iou.max(1).values.argsort(descending=True)[: cfg.comp_units].tolist()
            for u in order:
                f, v = compositional_label(on[:, u], cm, concepts, cfg.beam, cfg.max_length)
                lab = labels[u]
                labels[u] = UnitLabel(lab.site, lab.unit, lab.concept, lab.iou, lab.best, lab.threshold, f, v)
        out[s] = SiteDissection(s, thresholds[s], iou, p1[s].m, p1[s].t, p1[s].q.exact(cfg.quantile), labels)
    return out


def _pass_multi(batches, sites, make, update, acts_fn, cache, save_every):
    """Pass 1 with three statistics per site, each checkpointed under its own tag."""

    if cache is None:
        return _pass(batches, sites, make, update, acts_fn, None, "p1", save_every)
    tags = ("quantile", "moments", "topk")
    loaded = {(s, t): load_stats(cache / f"{_site_key(s)}.{t}") for s in sites for t in tags}
    done = None
    stats: dict[str, Any] = {}
    if all(st is not None for st, _ in loaded.values()) and len({m.done for _, m in loaded.values()}) == 1:
        done = next(iter(loaded.values()))[1].done
        for s in sites:
            q, m, t = (loaded[(s, t)][0] for t in tags)
            stats[s] = SimpleNamespace(q=q, m=m, t=t)
    start = done or 0
    i = -1
    for i, batch in enumerate(batches()):
        if i < start:
            continue
        acts = acts_fn(batch.inputs)
        for s in sites:
            a = acts[s]
            if a.shape[0] != batch.masks.shape[0]:
                raise ShapeError(f"site {s} gives {a.shape[0]} rows but the concept masks have {batch.masks.shape[0]}; "
                                 f"masks must have one row per token / pixel of the inputs")
            if s not in stats:
                stats[s] = make(s, a)
            update(stats[s], a, batch)
        if (i + 1) % save_every == 0:
            _save_p1(stats, sites, cache, i + 1)
    if not stats:
        raise InterpbenchError("the dissection dataset yielded no batches; give it at least one input")
    if i + 1 > start:
        _save_p1(stats, sites, cache, i + 1)
    return stats


def _save_p1(stats, sites, cache, done):
    for s in sites:
        for tag, st in (("quantile", stats[s].q), ("moments", stats[s].m), ("topk", stats[s].t)):
            save_stats(st, cache / f"{_site_key(s)}.{tag}", done=done)
