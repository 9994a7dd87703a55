"""Pure metric functions for scorers (lists/arrays in, floats out; no model, no I/O).

- balanced accuracy = (TPR + TNR) / 2 at a 0.5 threshold on the judge's probability;
- F1 = 2·P·R / (P + R) of the positive class at the same threshold (0 when undefined);
- AUROC = P(score of a random positive > score of a random negative), ties count ½
  (the Mann–Whitney U statistic divided by n_pos·n_neg);
- Pearson r over pooled values (nan when either side is constant).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def balanced_accuracy(labels: Sequence[int], probs: Sequence[float], threshold: float = 0.5) -> float:
    y = np.asarray(labels, dtype=bool)
    pred = np.asarray(probs, dtype=np.float64) > threshold
    if y.all() or (~y).all():
        return float("nan")
    tpr = (pred & y).sum() / y.sum()
    tnr = (~pred & ~y).sum() / (~y).sum()
    return float((tpr + tnr) / 2)


def f1(labels: Sequence[int], probs: Sequence[float], threshold: float = 0.5) -> float:
    y = np.asarray(labels, dtype=bool)
    pred = np.asarray(probs, dtype=np.float64) > threshold
    tp = float((pred & y).sum())
    if tp == 0:
        return 0.0
    p, r = tp / pred.sum(), tp / y.sum()
    return float(2 * p * r / (p + r))


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"pearson needs equal lengths, got {len(a)} and {len(b)}")
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def classification_metrics(labels: Sequence[int], probs: Sequence[float]) -> dict:
    """The detection/fuzzing triple; ``score`` is the AUROC."""
    return {"auroc": auroc(labels, probs), "balanced_accuracy": balanced_accuracy(labels, probs),
            "f1": f1(labels, probs)}


def nan_to_none(x: float):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
