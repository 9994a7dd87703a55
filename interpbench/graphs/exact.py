"""Exact edge patching for every edge, and the best edge AUC any ablation-based method can reach.

:func:`exact_edge_scores` scores each edge ``u -> r`` by what EAP / EAP-IG estimate:
``mean m(clean) - mean m(only u -> r ablated)``, measured with one forward of
:func:`~interpbench.graphs.engine.run_edges` per edge (receiver input = clean input minus
the clean sender output plus the reference one). It also records, per edge, the largest
|change of any logit| and the largest |change of the metric| over prompts (and
positions): an edge whose ablation moves no logit at all is *inert* under that ablation
and data (e.g. a positional input under resample ablation, where the corrupted prompt has
the same positions); one that moves no prompt's metric is *metric-inert* (it may still
move logits the metric does not read).

:func:`auc_bound` turns that into a ceiling. Inert edges are indistinguishable to every
method that reads the model through the ablation (each of their interventions leaves the
output unchanged, so an honest score for all of them is the same number, 0); metric-inert
edges are indistinguishable to every method that reads it through the ablation and the
metric (EAP, EAP-IG, ACDC with that metric). The best ROC AUC with ties counted one half
is reached by ranking the non-inert true edges first, then the inert edges as one tied
block, then the non-inert false edges::

    AUC* = (P_live * N + P_inert * (N_live + N_inert / 2)) / (P * N)

where P / N are the true / false edges. When every false edge is inert too (Tracr), this is
``(P_live + P_inert / 2) / P``.

Cost of the exact scores: ``3 + n_edges`` forwards (clean, reference, metric on clean, one
per edge); meant for small models and for checking approximations on a subset.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import InterpbenchError
from .eap import EdgeScores, MetricFn, task_metric
from .engine import components, reference_outputs, run_edges, sender_outputs

INERT_RTOL = 1e-6
"""An edge is inert when no logit moves by more than this times the largest |clean logit| (metric-inert:
no prompt's metric moves by more than this times the largest |clean metric|, floor 1)."""


@torch.no_grad()
def exact_edge_scores(model, pairs, *, ablation: str = "resample", metric: Optional[MetricFn] = None,
                      edges: Optional[Sequence[tuple[str, str]]] = None, progress: bool = False) -> EdgeScores:
    """Exact single-edge ablation effect of every valid edge (or of ``edges``).

    Returns :class:`~interpbench.graphs.eap.EdgeScores` with ``method='exact'``; ``params``
    holds ``max_logit_change`` / ``max_metric_change`` (``[senders receivers]``, the largest
    |logit change| over prompts and positions / |metric change| over prompts),
    ``logit_scale`` (max |clean logit|), ``inert`` and ``metric_inert`` (bool
    ``[senders receivers]``, scored edges only).
    """
    if ablation not in ("resample", "mean", "zero"):
        raise InterpbenchError(f"exact edge patching needs a patching ablation (resample, mean, zero), not {ablation!r}")
    metric = metric or task_metric()
    comp = components(model)
    pairs = pairs.to(model.device)
    clean = sender_outputs(model, comp, pairs.clean)
    ref, passes = reference_outputs(model, comp, pairs.clean, pairs.corrupted, ablation, clean)
    clean_logits = model(pairs.clean)
    m_clean_each = metric(clean_logits, pairs).float()
    m_clean = m_clean_each.mean()
    passes += 2
    s_idx = {n: i for i, n in enumerate(comp.senders)}
    r_idx = {n: i for i, n in enumerate(comp.receivers)}
    if edges is None:
        todo = [(u, r) for u, r in comp.valid.nonzero().tolist()]
    else:
        todo = []
        for u, r in edges:
            if u not in s_idx or r not in r_idx or not comp.valid[s_idx[u], r_idx[r]]:
                raise InterpbenchError(f"edge {u}->{r} is not an edge of this model's component graph")
            todo.append((s_idx[u], r_idx[r]))
    S, R = comp.valid.shape
    effect = torch.zeros(S, R, device=model.device)
    moved = torch.zeros(S, R, device=model.device)
    moved_m = torch.zeros(S, R, device=model.device)
    mask = torch.zeros(S, R, device=model.device)
    it = todo
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(todo, desc=f"exact edge patching ({ablation})", unit="edge")
    for u, r in it:
        mask[u, r] = 1.0
        logits = run_edges(model, comp, pairs.clean, mask=mask, ref=ref)
        mask[u, r] = 0.0
        m = metric(logits, pairs).float()
        effect[u, r] = m_clean - m.mean()
        moved[u, r] = (logits.float() - clean_logits.float()).abs().max()
        moved_m[u, r] = (m - m_clean_each).abs().max()
        passes += 1
    scale = clean_logits.float().abs().max().cpu()  # host syncs after the loop only
    m_scale = m_clean_each.abs().max().cpu()
    effect, moved, moved_m = effect.cpu(), moved.cpu(), moved_m.cpu()
    done = torch.zeros(S, R, dtype=torch.bool)
    for u, r in todo:
        done[u, r] = True
    inert = done & (moved <= INERT_RTOL * max(float(scale), 1.0))
    metric_inert = done & (moved_m <= INERT_RTOL * max(float(m_scale), 1.0))
    return EdgeScores(comp, effect, "exact", ablation, {"forward": passes, "backward": 0},
                      {"max_logit_change": moved, "max_metric_change": moved_m, "logit_scale": float(scale),
                       "inert": inert, "metric_inert": metric_inert, "inert_rtol": INERT_RTOL})


def auc_bound(labels: Sequence[int], inert: Sequence[bool]) -> float:
    """Best tie-aware ROC AUC any scorer can reach when the ``inert`` edges are indistinguishable.

    ``labels``: 1 for true edges; ``inert``: True where the edge's ablation changes nothing
    (see the module docstring for the formula). ``nan`` without both classes.
    """
    if len(labels) != len(inert):
        raise InterpbenchError(f"auc_bound got {len(labels)} labels and {len(inert)} inert flags")
    P_live = sum(1 for y, z in zip(labels, inert) if y and not z)
    P_inert = sum(1 for y, z in zip(labels, inert) if y and z)
    N_live = sum(1 for y, z in zip(labels, inert) if not y and not z)
    N_inert = sum(1 for y, z in zip(labels, inert) if not y and z)
    P, N = P_live + P_inert, N_live + N_inert
    if P == 0 or N == 0:
        return float("nan")
    return (P_live * N + P_inert * (N_live + N_inert / 2)) / (P * N)


def edge_list(es: EdgeScores, edges: Sequence[tuple[str, str]], key: str = "score") -> list:
    """Values of ``es`` for ``edges`` in order: ``key='score'`` (the scores) or a ``params`` matrix name."""
    mat = es.scores if key == "score" else es.params[key]
    s_idx = {s: i for i, s in enumerate(es.comp.senders)}
    r_idx = {r: i for i, r in enumerate(es.comp.receivers)}
    out = []
    for u, r in edges:
        if u not in s_idx or r not in r_idx:
            raise InterpbenchError(f"edge {u}->{r} is not an edge of this model's component graph")
        v = mat[s_idx[u], r_idx[r]]
        out.append(bool(v) if mat.dtype == torch.bool else float(v))
    return out
