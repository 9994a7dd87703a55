"""Edge attribution patching: EAP (Syed et al. 2023) and EAP-IG (Hanna et al. 2024,
"Have Faith in Faithfulness"), for all edges in a number of passes independent of the
number of edges.

Score of edge u -> r (positive = the edge carries the behaviour):
    score(u -> r) = sum_pos  mean_batch  (s_u(clean) - s_u(ref)) . g_r
the first-order estimate of ``metric(clean) - metric(edge u->r ablated)``, where ``s_u`` is
sender u's output, ``ref`` the corrupted (resample), mean or zero output, and ``g_r`` the
gradient of the metric with respect to receiver r's *own* input (its q/k/v port or MLP or
logits input; see :mod:`interpbench.graphs.engine` for how ports get separate inputs).

Algorithm:
1. One forward on the clean prompts caches every sender output (1 forward).
2. Reference outputs: a forward on the corrupted prompts (resample; mean averages it over
   prompts per position; zero needs none) (1 forward).
3. EAP: one forward + backward of :func:`~interpbench.graphs.engine.run_edges` on the
   clean prompts with zero probes at every receiver input; the probe gradients are g_r.
   EAP-IG: ``steps`` forward + backward passes where the input node's output is
   ``ref_in + (k/steps)(clean_in - ref_in)``, k = 0..steps-1 (as in the EAP-IG code), and
   g_r is the mean of the probe gradients over the steps.
4. ``scores[u, r] = einsum(clean - ref, g)`` over batch, position and d_model (per position
   when ``per_position``), masked to valid edges (sender before receiver).
Cost: EAP 3 forward + 1 backward; EAP-IG steps + 2 forward + steps backward, i.e. the
target "steps + 2 forward-and-backward equivalents", whatever the number of edges.

``eap-ig-edges`` (an extra variant, not in Hanna et al.) integrates along the joint
edge-ablation path instead of the input: at ``alpha = (k + 1/2)/steps`` every edge is
ablated by the fraction alpha (mask ``alpha * valid``), and the score is the mean over
steps of ``(s_u(alpha) - ref_u) . g_r(alpha)`` with this run's sender outputs -- exactly
``-d metric / d M[u, r]``, so the scores sum to ``m(clean) - m(all edges ablated)`` up to
the quadrature error. Cost: steps + 1 forward, steps backward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor

from ..errors import InterpbenchError
from .engine import Components, components, reference_outputs, run_edges, sender_outputs
from .ir import CausalGraph, Edge, GraphMeta, component_node

MetricFn = Callable[[Tensor, object], Tensor]


def task_metric(name: str = "logit_diff") -> MetricFn:
    """Per-prompt metric ``(logits, pairs) -> [batch]`` from :mod:`interpbench.metrics`."""
    from .. import metrics as M

    table = {"logit_diff": lambda lg, p: M.logit_diff(lg, p.answer, p.wrong),
             "logprob": lambda lg, p: M.answer_logprob(lg, p.answer),
             "prob": lambda lg, p: M.answer_prob(lg, p.answer)}
    if name not in table:
        raise InterpbenchError(f"unknown graph metric {name!r}; use one of {', '.join(table)}")
    return table[name]


@dataclass(frozen=True)
class EdgeScores:
    """Dense edge scores of one attribution run."""

    comp: Components
    """Sender/receiver layout the matrix is indexed by."""
    scores: Tensor
    """``[senders receivers]`` (or ``[pos senders receivers]``) scores on the CPU; 0 where invalid."""
    method: str
    """``eap`` or ``eap-ig`` (or ``acdc``, ``exact``)."""
    ablation: str
    """``resample``, ``mean`` or ``zero``."""
    passes: dict = field(default_factory=dict)
    """``{"forward": F, "backward": B}``."""
    params: dict = field(default_factory=dict)
    """Method settings (steps, ...)."""


def edge_scores(model, pairs, *, method: str = "eap-ig", ablation: str = "resample", steps: int = 5,
                metric: Optional[MetricFn] = None, per_position: bool = False, refine: int = 0,
                refine_tol: float = 0.01) -> EdgeScores:
    """EAP / EAP-IG scores of every edge of ``model``'s component graph on ``pairs``.

    EAP-IG records its quadrature check in ``params['completeness']``: the integrated
    gradients of the input node should add up to ``m(clean) - m(ref input)`` (IG's
    completeness axiom); ``rel_error`` says how far the ``steps``-point Riemann sum is from it.
    ``refine > 0`` (EAP-IG only) spends up to that many extra forward+backward passes
    bisecting the path interval whose left-point estimate ``m'(a) (b - a)`` misses the
    measured ``m(b) - m(a)`` most, until the summed misses are within ``refine_tol`` of
    ``|m(clean) - m(ref input)|``; the scores become the interval-width-weighted (left
    Riemann) sum over the refined points. It catches step-like nonlinearities (Tracr's
    discretising MLPs) that a uniform grid steps over.
    """
    if method not in ("eap", "eap-ig", "eap-ig-edges"):
        raise InterpbenchError(f"edge_scores computes eap, eap-ig or eap-ig-edges, not {method!r}")
    if method.startswith("eap-ig") and steps < 1:
        raise InterpbenchError(f"eap-ig needs steps >= 1 (got {steps})")
    if refine < 0 or (refine and method != "eap-ig"):
        raise InterpbenchError(f"refine (adaptive IG steps) applies to eap-ig only and must be >= 0 "
                               f"(got {refine} for {method})")
    metric = metric or task_metric()
    comp = components(model)
    pairs = pairs.to(model.device)
    clean, clean_logits = sender_outputs(model, comp, pairs.clean, return_logits=True)  # [batch pos senders d_model]
    ref, ref_passes = reference_outputs(model, comp, pairs.clean, pairs.corrupted, ablation, clean)
    fwd, bwd = 1 + ref_passes, 0
    if method == "eap-ig-edges":
        return _edge_path_ig(model, comp, pairs, ref, metric, steps, ablation, fwd - 1, per_position)
    diff = (clean - ref).expand_as(clean)
    eq = "bpsd,bprd->psr" if per_position else "bpsd,bprd->sr"

    def point(a: float):
        """Metric and receiver-input gradients with the input node at ``ref + a (clean - ref)``."""
        probes = torch.zeros(*pairs.clean.shape, len(comp.receivers), model.cfg.d_model, device=model.device,
                             dtype=clean.dtype, requires_grad=True)  # [batch pos receivers d_model]
        inp = None if a == 1.0 else ref[:, :, 0] + a * (clean[:, :, 0] - ref[:, :, 0])
        if inp is not None:
            inp = inp.expand_as(clean[:, :, 0]).contiguous()
        with torch.enable_grad():
            logits = run_edges(model, comp, pairs.clean, probes=probes, input_value=inp)
            value = metric(logits, pairs).mean()
            (g,) = torch.autograd.grad(value, probes)
        # d m / d a: the input node feeds every receiver input directly
        slope = torch.einsum("bpd,bprd->", diff[:, :, 0].to(g.dtype), g)
        return value.detach(), g, slope.detach()

    if method == "eap":
        _, grad, _ = point(1.0)
        scores = torch.einsum(eq, diff, grad).detach().float().cpu()
        scores = scores * comp.valid.to(scores.dtype)
        return EdgeScores(comp, scores, method, ablation, {"forward": fwd + 1, "backward": 1}, {})
    m1 = metric(clean_logits, pairs).float().mean()
    grad, pts = None, {}  # pts[alpha] = (metric, dm/dalpha, per-point scores when refining)
    for a in (k / steps for k in range(steps)):  # the EAP-IG grid, k = 0..steps-1
        v, g, d = point(a)
        grad = g if grad is None else grad + g
        pts[a] = (v.float(), d.float(), torch.einsum(eq, diff, g).detach().float() if refine else None)
    extra, tol = 0, refine_tol * abs(float(m1 - pts[0.0][0])) if refine else 0.0
    while extra < refine:  # bisect the interval whose left-point estimate misses m(b) - m(a) most
        grid = sorted(pts) + [1.0]
        vals = [pts[a][0] for a in grid[:-1]] + [m1]
        miss = [abs(float(vals[i + 1] - vals[i] - pts[grid[i]][1] * (grid[i + 1] - grid[i])))
                for i in range(len(grid) - 1)]
        i = max(range(len(miss)), key=miss.__getitem__)
        if sum(miss) <= tol or grid[i + 1] - grid[i] < 1e-6:
            break
        mid = (grid[i] + grid[i + 1]) / 2
        v, g, d = point(mid)
        pts[mid] = (v.float(), d.float(), torch.einsum(eq, diff, g).detach().float())
        extra += 1
    fwd, bwd = fwd + steps + extra, bwd + steps + extra
    grid = sorted(pts) + [1.0]
    w = [grid[i + 1] - grid[i] for i in range(len(grid) - 1)]  # left Riemann weights (1/steps without refining)
    if extra:
        scores = sum(wi * pts[a][2] for wi, a in zip(w, grid[:-1])).cpu()
    else:  # one einsum on the summed gradients (the plain EAP-IG cost)
        scores = torch.einsum(eq, diff, grad / steps).detach().float().cpu()
    ig_sum = sum(wi * pts[a][1] for wi, a in zip(w, grid[:-1]))
    completeness = _completeness(m1, pts[0.0][0], ig_sum, steps + extra, extra)
    if refine:
        completeness["alphas"] = [round(a, 6) for a in grid[:-1]]
    scores = scores * comp.valid.to(scores.dtype)
    params = {"steps": steps, "completeness": completeness}
    if refine:
        params.update(refine=refine, refine_tol=refine_tol)
    return EdgeScores(comp, scores, method, ablation, {"forward": fwd, "backward": bwd}, params)


def _completeness(m_clean: Tensor, m_ref: Tensor, ig_sum: Tensor, points: int, extra: int) -> dict:
    """IG completeness record: ``m(clean) - m(ref input)`` vs the Riemann sum of ``dm/da``."""
    delta, got = float(m_clean - m_ref), float(ig_sum)  # one host sync, after the passes
    rel = abs(got - delta) / abs(delta) if delta != 0 else (0.0 if got == 0 else None)  # None: undefined (JSON-safe)
    return {"delta_metric": delta, "ig_sum": got, "rel_error": rel, "points": points, "refined_points": extra}


def _edge_path_ig(model, comp: Components, pairs, ref: Tensor, metric: MetricFn, steps: int, ablation: str,
                  ref_passes: int, per_position: bool) -> EdgeScores:
    """IG along the joint edge-ablation path (``eap-ig-edges``, see the module docstring)."""
    valid = comp.valid.to(model.device)
    total = None
    for k in range(steps):
        a = (k + 0.5) / steps
        probes = torch.zeros(*pairs.clean.shape, len(comp.receivers), model.cfg.d_model, device=model.device,
                             dtype=ref.dtype, requires_grad=True)  # [batch pos receivers d_model]
        with torch.enable_grad():
            logits, senders = run_edges(model, comp, pairs.clean, mask=a * valid.to(ref.dtype), ref=ref, probes=probes,
                                        return_senders=True)
            (g,) = torch.autograd.grad(metric(logits, pairs).mean(), probes)
        eq = "bpsd,bprd->psr" if per_position else "bpsd,bprd->sr"
        s = torch.einsum(eq, (senders.detach() - ref).expand_as(senders), g)
        total = s if total is None else total + s
    scores = (total / steps).detach().float().cpu() * comp.valid.float()
    return EdgeScores(comp, scores, "eap-ig-edges", ablation, {"forward": 1 + ref_passes + steps, "backward": steps},
                      {"steps": steps})


def to_graph(es: EdgeScores, *, model_name: str = "", pairs=None, metric_name: str = "logit_diff") -> CausalGraph:
    """A :class:`CausalGraph` with one edge per valid (sender, receiver) (per position if scored so)."""
    comp = es.comp
    L = comp.n_layers
    base_nodes = list(comp.senders) + ["logits"]
    sc = es.scores
    positional = sc.ndim == 3
    n_pos = sc.shape[0] if positional else 1
    suffixes = [f"@{p}" for p in range(n_pos)] if positional else [""]
    nodes = [component_node(n + s, L) for s in suffixes for n in base_nodes]
    valid = comp.valid.nonzero().tolist()
    vals = sc.tolist()
    edges = []
    for pi, s in enumerate(suffixes):
        row = vals[pi] if positional else vals
        for u, r in valid:
            rec = comp.receivers[r]
            node, _, port = rec.partition("<")
            target = node + s + (f"<{port}" if port else "")
            edges.append(Edge(comp.senders[u] + s, target, float(row[u][r]), es.method, es.ablation))
    meta = GraphMeta(model=model_name, task=getattr(pairs, "name", ""), metric=metric_name,
                     data_hash=pairs.data_hash() if pairs is not None else "", method=es.method, ablation=es.ablation,
                     n_prompts=getattr(pairs, "n", 0), passes=dict(es.passes), params=dict(es.params),
                     model_cfg=comp.to_dict())
    return CausalGraph(tuple(nodes), tuple(edges), meta)


def graph_scores(graph: CausalGraph, comp: Components, field_: str = "score") -> Tensor:
    """Dense ``[senders receivers]`` matrix of a (non-positional) component graph's scores."""
    s_idx = {n: i for i, n in enumerate(comp.senders)}
    r_idx = {n: i for i, n in enumerate(comp.receivers)}
    out = torch.zeros(len(comp.senders), len(comp.receivers))
    for e in graph.edges:
        if e.source in s_idx and e.target in r_idx:
            v = getattr(e, field_)
            out[s_idx[e.source], r_idx[e.target]] = float(v) if v is not None else float("nan")
    return out
