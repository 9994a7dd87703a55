"""Pruning: pure functions from a scored graph to a circuit (``Edge.in_circuit``).

1. :func:`top_n` keeps the n highest-scoring edges (by |score| with ``absolute``, else by
   signed score: positive = supports the behaviour); :func:`threshold` keeps edges with
   score (or |score|) >= tau.
2. :func:`prune_dead` then drops kept edges that are not on a kept path from ``input`` to
   ``logits`` (MIB's ``prune=True``): a sender must be the input or receive a kept edge, a
   receiver node must be the logits or send a kept edge; repeat until nothing changes.
   A ``<k>``/``<v>`` port of KV head j counts as an input of every query head it feeds.
3. :func:`node_scores` / :func:`top_nodes`: node-level pruning. A node's score is the sum
   of its outgoing edge scores (to first order, the effect of ablating its output
   everywhere); :func:`top_nodes` keeps the edges between the n best nodes.
4. :func:`cumulative_influence` (circuit-tracer's pruning): normalise |edge weights| so
   each node's incoming weights sum to 1, propagate influence back from the logits
   (``influence = w A + w A^2 + ...``), keep the smallest node set holding
   ``node_threshold`` of the total influence, then the smallest edge set (edge influence =
   normalised weight x influence of its target) holding ``edge_threshold``.
Nothing here touches a model.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import torch

from ..errors import InterpbenchError
from .ir import CausalGraph, Edge, port_heads, split_receiver


def _key(e: Edge, absolute: bool) -> float:
    return abs(e.score) if absolute else e.score


def _set(graph: CausalGraph, keep: set[int]) -> CausalGraph:
    return graph.with_edges(replace(e, in_circuit=i in keep) for i, e in enumerate(graph.edges))


def top_n(graph: CausalGraph, n: int, absolute: bool = True, prune: bool = True) -> CausalGraph:
    """Keep the ``n`` best edges (ties broken by edge order)."""
    if n < 0:
        raise InterpbenchError(f"top_n needs n >= 0 (got {n})")
    order = sorted(range(len(graph.edges)), key=lambda i: (-_key(graph.edges[i], absolute), i))
    out = _set(graph, set(order[:n]))
    return prune_dead(out) if prune else out


def threshold(graph: CausalGraph, tau: float, absolute: bool = True, prune: bool = True) -> CausalGraph:
    """Keep edges whose score (|score| with ``absolute``) is at least ``tau``."""
    out = _set(graph, {i for i, e in enumerate(graph.edges) if _key(e, absolute) >= tau})
    return prune_dead(out) if prune else out


def _receiver_nodes(graph: CausalGraph, target: str) -> list[str]:
    cfg = graph.meta.model_cfg
    if cfg.get("n_heads") and cfg.get("n_kv_heads"):
        return port_heads(target, int(cfg["n_heads"]), int(cfg["n_kv_heads"]))
    return [split_receiver(target)[0]]


def prune_dead(graph: CausalGraph) -> CausalGraph:
    """Drop kept edges that lie on no kept input -> logits path."""
    sources = {n.id for n in graph.nodes if n.type == "input"}
    sinks = {n.id for n in graph.nodes if n.type == "logits"}
    keep = {i for i, e in enumerate(graph.edges) if e.in_circuit}
    recv = {i: _receiver_nodes(graph, graph.edges[i].target) for i in keep}
    while True:
        has_in = set(sources)
        has_out = set(sinks)
        for i in keep:
            e = graph.edges[i]
            has_in.update(recv[i])
            has_out.add(e.source)
        alive = {i for i in keep if graph.edges[i].source in has_in and any(r in has_out for r in recv[i])}
        if alive == keep:
            break
        keep = alive
    return _set(graph, keep)


def node_scores(graph: CausalGraph) -> dict[str, float]:
    """Sum of outgoing edge scores per sender node."""
    out: dict[str, float] = defaultdict(float)
    for e in graph.edges:
        out[e.source] += e.score
    return dict(out)


def top_nodes(graph: CausalGraph, n: int, absolute: bool = True) -> CausalGraph:
    """Node-level circuit: the ``n`` best component nodes (input and logits always kept)."""
    scores = node_scores(graph)
    fixed = {nd.id for nd in graph.nodes if nd.type in ("input", "logits")}
    ranked = sorted((k for k in scores if k not in fixed), key=lambda k: -(abs(scores[k]) if absolute else scores[k]))
    keep_nodes = fixed | set(ranked[:n])
    keep = {i for i, e in enumerate(graph.edges)
            if e.source in keep_nodes and any(r in keep_nodes for r in _receiver_nodes(graph, e.target))}
    return _set(graph, keep)


def cumulative_influence(graph: CausalGraph, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> CausalGraph:
    """circuit-tracer style pruning by cumulative influence on the logits (see module docstring)."""
    ids = [n.id for n in graph.nodes]
    idx = {k: i for i, k in enumerate(ids)}
    n = len(ids)
    A = torch.zeros(n, n, dtype=torch.float64)  # A[target, source] = |weight|
    for e in graph.edges:
        t = idx[split_receiver(e.target)[0]]
        A[t, idx[e.source]] += abs(e.score)
    A = A / A.sum(1, keepdim=True).clamp_min(1e-30)
    w = torch.tensor([1.0 if nd.type == "logits" else 0.0 for nd in graph.nodes], dtype=torch.float64)
    influence = torch.zeros(n, dtype=torch.float64)
    cur = w @ A
    for _ in range(n):  # A is nilpotent on a DAG: at most n steps
        if not bool(cur.any()):
            break
        influence += cur
        cur = cur @ A
    keep_nodes = set(_cumulative(influence, node_threshold).tolist()) | {i for i in range(n) if w[i] > 0}
    node_mask = torch.zeros(n, dtype=torch.float64)
    node_mask[list(keep_nodes)] = 1.0
    edge_inf = []
    for e in graph.edges:
        t, s = idx[split_receiver(e.target)[0]], idx[e.source]
        ok = node_mask[t] * node_mask[s]
        edge_inf.append(float(A[t, s] * (influence[t] + w[t]) * ok))
    ei = torch.tensor(edge_inf, dtype=torch.float64)
    keep = {i for i in _cumulative(ei, edge_threshold).tolist() if ei[i] > 0}
    return _set(graph, keep)


def _cumulative(values: torch.Tensor, fraction: float) -> torch.Tensor:
    """Indices of the largest values whose running sum first reaches ``fraction`` of the total."""
    if not 0 <= fraction <= 1:
        raise InterpbenchError(f"cumulative threshold must be in [0, 1] (got {fraction})")
    total = float(values.sum())
    if total <= 0:
        return torch.zeros(0, dtype=torch.long)
    order = values.argsort(descending=True)
    csum = values[order].cumsum(0) / total
    k = int((csum < fraction).sum()) + 1
    return order[: min(k, len(order))]


def circuit_nodes(graph: CausalGraph) -> list[str]:
    """Component nodes touched by a kept edge (input and logits excluded), in node order."""
    used = set()
    for e in graph.circuit_edges:
        used.add(e.source)
        used.update(_receiver_nodes(graph, e.target))
    return [n.id for n in graph.nodes if n.id in used and n.type not in ("input", "logits")]
