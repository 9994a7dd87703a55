"""Unit labels from IoU tables: Network Dissection (Bau et al. 2017) and compositional
explanations (Mu & Andreas 2020). Pure functions: tensors in, records out.

1. Single-concept label: ``best = argmax_c IoU[u, c]``; the unit is labelled with it when
   ``IoU[u, best] > iou_threshold`` (default 0.04), else ``""``.
2. Compositional label (beam search): start from the ``beam`` best single concepts; at
   each of ``max_length - 1`` steps extend every formula ``F`` in the beam with
   ``F AND c``, ``F OR c`` and ``F AND NOT c`` for every concept ``c``, score each by its
   IoU with the unit's binary mask, keep the ``beam`` best (formulas that are already in
   the beam are not re-added). The label is the best formula found.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from ..errors import ShapeError

LABELS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class UnitLabel:
    """One unit's dissection result."""

    site: str
    """Site name of the unit (e.g. ``blocks.3.mlp.hook_post`` or ``conv2``)."""
    unit: int
    """Unit index along the site's unit axis (neuron, channel, head, latent)."""
    concept: str
    """Best single concept, or ``""`` when its IoU does not exceed the threshold."""
    iou: float
    """IoU of the unit's thresholded activation with the best concept's mask."""
    best: str
    """Best concept regardless of the threshold."""
    threshold: float
    """Activation threshold of the unit (its top-quantile value)."""
    formula: str = ""
    """Best compositional formula (Mu & Andreas), when computed."""
    formula_iou: Optional[float] = None
    """IoU of that formula."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UnitLabel":
        return cls(**d)


def label_units(iou: Float[Tensor, "units concepts"], concepts: Sequence[str], thresholds: Tensor, site: str,
                iou_threshold: float = 0.04) -> list[UnitLabel]:
    """Single-concept labels for every unit (step 1)."""
    if iou.ndim != 2 or iou.shape[1] != len(concepts):
        raise ShapeError(f"IoU table has shape {tuple(iou.shape)} but there are {len(concepts)} concepts")
    if len(concepts) == 0:
        raise ShapeError("no concepts to label with; give at least one non-empty concept")
    best_v, best_i = iou.max(1)
    vals, idx, th = best_v.tolist(), best_i.tolist(), thresholds.tolist()  # one host sync for the table
    return [UnitLabel(site, u, concepts[i] if v > iou_threshold else "", float(v), concepts[i], float(t))
            for u, (v, i, t) in enumerate(zip(vals, idx, th))]


def _iou(on: Tensor, masks: Tensor) -> Tensor:
    """IoU of one unit mask ``on [N]`` with each column of ``masks [N K]``."""
    inter = on.float() @ masks.float()
    union = on.sum() + masks.sum(0) - inter
    return inter / union.clamp(min=1)


def compositional_label(on: Bool[Tensor, "samples"], masks: Bool[Tensor, "samples concepts"],
                        concepts: Sequence[str], beam: int = 5, max_length: int = 3) -> tuple[str, float]:
    """Best AND/OR/AND-NOT formula for one unit (step 2); returns ``(formula, iou)``."""
    if masks.shape[0] != on.shape[0]:
        raise ShapeError(f"unit mask has {on.shape[0]} samples but concept masks {masks.shape[0]}")
    single = _iou(on, masks)
    k = min(beam, len(concepts))
    top = single.topk(k)
    cur = [(concepts[i], masks[:, i], float(v)) for v, i in zip(top.values.tolist(), top.indices.tolist())]
    seen = {f for f, _, _ in cur}
    for _ in range(max_length - 1):
        cand = list(cur)
        for form, fmask, _ in cur:
            for op, new in (("AND", fmask[:, None] & masks), ("OR", fmask[:, None] | masks),
                            ("AND NOT", fmask[:, None] & ~masks)):
                scores = _iou(on, new)
                kk = min(beam, len(concepts))
                best = scores.topk(kk)
                for v, i in zip(best.values.tolist(), best.indices.tolist()):
                    name = f"({form} {op} {concepts[i]})"
                    if name not in seen and concepts[i] not in form.split():
                        cand.append((name, new[:, i], float(v)))
                        seen.add(name)
        cand.sort(key=lambda t: -t[2])
        cur = cand[:beam]
    return cur[0][0], cur[0][2]
