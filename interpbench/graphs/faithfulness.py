"""Faithfulness of a circuit: MIB curves (CPR, CMD) and IOI-style faithfulness,
completeness and minimality (Wang et al. 2022), under resample, mean or zero ablation.

A circuit is evaluated by running the model with every edge NOT in the circuit ablated:
the receiver reads the reference (corrupted / mean / zero) output of that sender
(:func:`~interpbench.graphs.engine.run_edges`). Algorithm (MIB, Mueller et al. 2025,
``evaluate_area_under_curve``):
1. ``m(N)``: metric of the full model (clean run); ``m(empty)``: metric with every edge ablated.
2. For each size p in (0.1 %, 0.2 %, 0.5 %, 1 %, 2 %, 5 %, 10 %, 20 %, 50 %, 100 %) keep the
   top ``int(p * n_edges)`` edges (signed scores for the CPR curve, |scores| for the CMD
   curve, as MIB does), prune dead edges, and measure ``m(C)`` (mean over prompts).
3. ``f(C) = (m(C) - m(empty)) / (m(N) - m(empty))``.
4. CPR = trapezoid area under f over p (x = the fraction of edges, not log-scaled); CMD =
   trapezoid area of |1 - f| over p. Higher CPR and lower CMD are better.
5. Each point also gets a percentile-bootstrap CI over prompts (variance over prompt resamples).
Seed variance (:func:`seed_variance`): the whole pipeline (prompts drawn with another seed →
method → pruning → curves) repeated per seed; mean and standard deviation of CPR, CMD and
the kept circuit's faithfulness, and the mean pairwise Jaccard overlap of the kept edges.
IOI-style (node level, nodes outside the circuit ablated): faithfulness ``F(C)/F(M)``;
incompleteness ``|F(C\\K) - F(M\\K)|`` over random subsets K of the circuit; minimality
``|F(C\\{v}) - F(C)|`` per circuit node v.
"""

from __future__ import annotations

import random
from typing import Optional, Sequence

import torch
from torch import Tensor

from ..errors import InterpbenchError
from .eap import MetricFn, task_metric
from .engine import Components, components, reference_outputs, run_edges, sender_outputs
from .ir import CausalGraph
from .prune import circuit_nodes, node_scores, top_n

MIB_PERCENTAGES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def ablation_mask(graph: CausalGraph, comp: Components, n_pos: Optional[int] = None) -> Tensor:
    """Float mask (1 = ablate) of the valid edges that are not in the circuit.

    Per-position graphs (node ids with ``@pos``) give ``[pos senders receivers]``; edges the
    graph does not list count as ablated.
    """
    s_idx = {n: i for i, n in enumerate(comp.senders)}
    r_idx = {n: i for i, n in enumerate(comp.receivers)}
    positional = any("@" in e.source for e in graph.edges)
    if positional:
        if n_pos is None:
            raise InterpbenchError("a per-position graph needs n_pos to build its mask")
        keep = torch.zeros(n_pos, len(comp.senders), len(comp.receivers), dtype=torch.bool)
    else:
        keep = torch.zeros(len(comp.senders), len(comp.receivers), dtype=torch.bool)
    for e in graph.edges:
        if not e.in_circuit:
            continue
        src, tgt = e.source, e.target
        if positional:
            src, _, p = src.partition("@")
            node, _, rest = tgt.partition("@")
            pos, _, port = rest.partition("<")
            tgt = node + (f"<{port}" if port else "")
            if src not in s_idx or tgt not in r_idx:
                raise InterpbenchError(f"edge {e.source}->{e.target} is not an edge of this model's component graph")
            keep[int(p), s_idx[src], r_idx[tgt]] = True
        else:
            if src not in s_idx or tgt not in r_idx:
                raise InterpbenchError(f"edge {src}->{tgt} is not an edge of this model's component graph")
            keep[s_idx[src], r_idx[tgt]] = True
    return (comp.valid & ~keep).float()


class CircuitEvaluator:
    """Runs circuits of one model on one set of prompt pairs under one ablation."""

    def __init__(self, model, pairs, ablation: str = "resample", metric: Optional[MetricFn] = None):
        self.model, self.ablation = model, ablation
        self.pairs = pairs.to(model.device)
        self.metric = metric or task_metric()
        self.comp = components(model)
        self.passes = 0
        clean = sender_outputs(model, self.comp, self.pairs.clean)
        self.ref, p = reference_outputs(model, self.comp, self.pairs.clean, self.pairs.corrupted, ablation, clean)
        self.passes += 1 + p
        self.n_pos = self.pairs.clean.shape[1]

    @torch.no_grad()
    def per_prompt(self, mask: Optional[Tensor]) -> Tensor:
        """Per-prompt metric with the edges in ``mask`` ablated (None: the clean model)."""
        self.passes += 1
        if mask is None:
            return self.metric(self.model(self.pairs.clean), self.pairs).float().cpu()
        logits = run_edges(self.model, self.comp, self.pairs.clean, mask=mask.to(self.model.device), ref=self.ref)
        return self.metric(logits, self.pairs).float().cpu()

    def graph(self, graph: CausalGraph) -> Tensor:
        return self.per_prompt(ablation_mask(graph, self.comp, self.n_pos))

    def nodes_kept(self, keep: set[str]) -> Tensor:
        """Per-prompt metric with every edge out of a component node not in ``keep`` ablated."""
        mask = torch.zeros(len(self.comp.senders), len(self.comp.receivers))
        for i, s in enumerate(self.comp.senders):
            if s != "input" and s not in keep:
                mask[i] = 1.0
        return self.per_prompt(mask * self.comp.valid.float())


def _boot_ratio(mc: Tensor, me: Tensor, mn: Tensor, n_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, mc.shape[0], (n_boot, mc.shape[0]), generator=g)
    num = mc[idx].mean(1) - me[idx].mean(1)
    den = mn[idx].mean(1) - me[idx].mean(1)
    f = num / den
    lo, hi = torch.quantile(f, torch.tensor([0.025, 0.975], dtype=f.dtype)).tolist()
    return float(lo), float(hi)


def areas(percentages: Sequence[float], f: Sequence[float]) -> tuple[float, float]:
    """(CPR, CMD): trapezoid areas of f and of |1 - f| over the percentages (MIB)."""
    cpr = cmd = 0.0
    for i in range(len(f) - 1):
        dx = percentages[i + 1] - percentages[i]
        cpr += dx * (f[i] + f[i + 1]) / 2
        cmd += dx * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2
    return cpr, cmd


def faithfulness_curve(ev: CircuitEvaluator, graph: CausalGraph, absolute: bool,
                       percentages: Sequence[float] = MIB_PERCENTAGES) -> dict:
    """MIB faithfulness curve of a scored graph (see module docstring)."""
    m_full = ev.per_prompt(None)
    m_empty = ev.per_prompt(ev.comp.valid.float())
    n = len(graph.edges)
    f, kept, raw, ci = [], [], [], []
    den = float(m_full.mean() - m_empty.mean())
    for p in percentages:
        g = top_n(graph, int(p * n), absolute=absolute, prune=True)
        mc = ev.graph(g)
        kept.append(len(g.circuit_edges))
        raw.append(float(mc.mean()))
        f.append((raw[-1] - float(m_empty.mean())) / den if den != 0 else float("nan"))
        ci.append(list(_boot_ratio(mc, m_empty, m_full)))
    cpr, cmd = areas(percentages, f)
    return {"percentages": list(percentages), "edges_kept": kept, "metric": raw, "faithfulness": f, "ci95": ci,
            "m_full": float(m_full.mean()), "m_empty": float(m_empty.mean()), "absolute": absolute,
            "cpr": cpr, "cmd": cmd, "average": sum(f) / len(f)}


def mib_block(model, pairs, graph: CausalGraph, ablations: Sequence[str] = ("resample",),
              metric: Optional[MetricFn] = None, percentages: Sequence[float] = MIB_PERCENTAGES) -> dict:
    """The ``faithfulness`` block saved with a graph: for each ablation, the CPR curve (signed
    scores) and the CMD curve (|scores|), plus the forward passes spent."""
    out: dict = {"definition": "MIB: f=(m(C)-m(empty))/(m(N)-m(empty)); CPR=area under f, CMD=area of |1-f|, "
                               "trapezoids over the fraction of edges kept", "ablations": {}}
    for abl in ablations:
        ev = CircuitEvaluator(model, pairs, abl, metric)
        signed = faithfulness_curve(ev, graph, absolute=False, percentages=percentages)
        absol = faithfulness_curve(ev, graph, absolute=True, percentages=percentages)
        out["ablations"][abl] = {"cpr": signed["cpr"], "cmd": absol["cmd"], "curve_signed": signed,
                                 "curve_abs": absol, "forward_passes": ev.passes}
    return out


def ioi_style(model, pairs, graph: CausalGraph, ablation: str = "mean", metric: Optional[MetricFn] = None,
              n_subsets: int = 4, max_nodes: int = 12, seed: int = 0) -> dict:
    """Wang et al.'s faithfulness, completeness and minimality for the kept edges' nodes."""
    ev = CircuitEvaluator(model, pairs, ablation, metric)
    nodes = circuit_nodes(graph)
    all_nodes = [s for s in ev.comp.senders if s != "input"]
    f_m = float(ev.nodes_kept(set(all_nodes)).mean())
    f_c = float(ev.nodes_kept(set(nodes)).mean())
    rng = random.Random(seed)
    incompleteness = []
    for _ in range(n_subsets if nodes else 0):
        k = set(rng.sample(nodes, max(1, len(nodes) // 2)))
        fc_k = float(ev.nodes_kept(set(nodes) - k).mean())
        fm_k = float(ev.nodes_kept(set(all_nodes) - k).mean())
        incompleteness.append({"removed": sorted(k), "f_c_minus_k": fc_k, "f_m_minus_k": fm_k, "gap": abs(fc_k - fm_k)})
    ns = {n: abs(s) for n, s in node_scores(graph).items()}
    minimality = {}
    for v in sorted(nodes, key=lambda n: -ns.get(n, 0.0))[:max_nodes]:
        f_v = float(ev.nodes_kept(set(nodes) - {v}).mean())
        minimality[v] = {"f_without": f_v, "drop": abs(f_v - f_c), "relative": abs(f_v - f_c) / abs(f_c) if f_c else None}
    return {"ablation": ablation, "n_nodes": len(nodes), "F_M": f_m, "F_C": f_c,
            "faithfulness_ratio": f_c / f_m if f_m else None, "faithfulness_gap": abs(f_m - f_c),
            "incompleteness": incompleteness,
            "max_incompleteness": max((x["gap"] for x in incompleteness), default=0.0),
            "minimality": minimality, "forward_passes": ev.passes}


def seed_variance(model, make_pairs, find_graph, seeds: Sequence[int], ablation: str = "resample",
                  metric: Optional[MetricFn] = None, percentages: Sequence[float] = MIB_PERCENTAGES,
                  known: Optional[dict] = None) -> dict:
    """Variance of a circuit-finding pipeline over seeds (see the module docstring).

    ``make_pairs(seed)``: prompt pairs for that seed; ``find_graph(pairs)``: the scored graph
    with its kept circuit (``circuit_edges``). Each seed's CPR (signed curve), CMD (|score|
    curve) and kept-circuit faithfulness under ``ablation``. ``known``: seed → ``{graph,
    signed, abs, kept_faithfulness}`` already computed (e.g. the run's own seed), not redone.
    """
    import statistics

    rows, kept_sets = [], []
    for sd in seeds:
        if known and sd in known:
            k = known[sd]
            g, signed, absol, kf = k["graph"], k["signed"], k["abs"], k["kept_faithfulness"]
        else:
            pairs = make_pairs(sd)
            g = find_graph(pairs)
            ev = CircuitEvaluator(model, pairs, ablation, metric)
            signed = faithfulness_curve(ev, g, absolute=False, percentages=percentages)
            absol = faithfulness_curve(ev, g, absolute=True, percentages=percentages)
            den = absol["m_full"] - absol["m_empty"]
            kf = (float(ev.graph(g).mean()) - absol["m_empty"]) / den if den else float("nan")
        kept = {(e.source, e.target) for e in g.circuit_edges}
        kept_sets.append(kept)
        rows.append({"seed": int(sd), "cpr": signed["cpr"], "cmd": absol["cmd"], "kept_faithfulness": kf,
                     "kept_edges": len(kept), "m_full": absol["m_full"], "m_empty": absol["m_empty"]})

    def stats(key: str) -> dict:
        xs = [r[key] for r in rows]
        return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                "min": min(xs), "max": max(xs)}

    jac = [len(a & b) / len(a | b) for i, a in enumerate(kept_sets) for b in kept_sets[i + 1:] if a | b]
    return {"ablation": ablation, "seeds": [int(s) for s in seeds], "per_seed": rows,
            "cpr": stats("cpr"), "cmd": stats("cmd"), "kept_faithfulness": stats("kept_faithfulness"),
            "kept_edges_jaccard": statistics.fmean(jac) if jac else None}
