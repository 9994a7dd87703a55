"""The verify step: re-score an approximate method's top edges exactly and report agreement.

1. Take the ``k`` edges with the largest |score| (EAP / EAP-IG estimates).
2. For each, measure the exact effect ``mean m(clean) - mean m(only this edge ablated)``
   with :func:`~interpbench.graphs.exact.exact_edge_scores` (one edge-patched forward per
   edge, same ablation as the scores, batched over prompts).
3. Report the Spearman rank correlation between estimates and exact scores, the edges
   whose sign flips, the absolute errors, and the forward passes spent; the exact values
   are written into ``Edge.exact``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch

from ..errors import InterpbenchError
from .eap import MetricFn, task_metric
from .exact import edge_list, exact_edge_scores
from .ir import CausalGraph


def _ranks(x: torch.Tensor) -> torch.Tensor:
    return x.argsort().argsort().double()


def spearman(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.numel() < 2:
        return float("nan")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = (ra.norm() * rb.norm())
    return float((ra @ rb) / den) if den > 0 else float("nan")


@torch.no_grad()
def verify(model, pairs, graph: CausalGraph, k: int = 20, ablation: Optional[str] = None,
           metric: Optional[MetricFn] = None) -> tuple[CausalGraph, dict]:
    """Exact re-scores of the top-``k`` edges and an agreement report."""
    ablation = ablation or graph.meta.ablation or "resample"
    if ablation not in ("resample", "mean", "zero"):
        raise InterpbenchError(f"verify needs a patching ablation (resample, mean, zero), not {ablation!r}")
    if any("@" in e.source for e in graph.edges):
        raise InterpbenchError("verify works on component graphs without positions")
    metric = metric or task_metric(graph.meta.metric or "logit_diff")
    order = sorted(range(len(graph.edges)), key=lambda i: -abs(graph.edges[i].score))[:k]
    keys = [(graph.edges[i].source, graph.edges[i].target) for i in order]
    es = exact_edge_scores(model, pairs, ablation=ablation, metric=metric, edges=keys)
    passes = es.passes["forward"]
    ex = dict(zip(order, edge_list(es, keys)))
    approx = [graph.edges[i].score for i in order]
    exv = [ex[i] for i in order]
    flips = [graph.edge_key(graph.edges[i]) for i in order if (graph.edges[i].score > 0) != (ex[i] > 0)]
    errs = [abs(a - b) for a, b in zip(approx, exv)]
    report = {"k": len(order), "ablation": ablation, "spearman": spearman(approx, exv), "sign_flips": len(flips),
              "flipped_edges": flips, "max_abs_error": max(errs, default=0.0),
              "mean_abs_error": sum(errs) / len(errs) if errs else 0.0, "forward_passes": passes,
              "edges": [{"edge": graph.edge_key(graph.edges[i]), "approx": graph.edges[i].score, "exact": ex[i]}
                        for i in order]}
    new = graph.with_edges(replace(e, exact=ex[i]) if i in ex else e for i, e in enumerate(graph.edges))
    return new, report
