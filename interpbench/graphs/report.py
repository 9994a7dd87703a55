"""Pure builders for what a circuit run writes beside its graph: the faithfulness figure,
the run's ``result.json`` record and the one-screen summary lines. No model access."""

from __future__ import annotations

import datetime as _dt
from typing import Optional

from .ir import CausalGraph


def finite_json(obj):
    """``obj`` with every non-finite float replaced by None (strict JSON)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def faithfulness_figure(block: dict):
    """Plotly figure: faithfulness against the fraction of edges kept, one line per curve."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for abl, res in (block.get("ablations") or {}).items():
        for key, label in (("curve_signed", "signed scores (CPR)"), ("curve_abs", "|scores| (CMD)")):
            c = res.get(key)
            if not c:
                continue
            fig.add_trace(go.Scatter(x=[100 * p for p in c["percentages"]], y=c["faithfulness"], mode="lines+markers",
                                     name=f"{abl}, {label}", customdata=c["edges_kept"],
                                     hovertemplate="%{x}% of edges (%{customdata} kept)<br>faithfulness %{y:.3f}"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="#888")
    fig.update_layout(title="circuit faithfulness (MIB): " + ", ".join(
        f"{a}: CPR {r['cpr']:.3f}, CMD {r['cmd']:.3f}" for a, r in (block.get("ablations") or {}).items()),
        xaxis_title="edges kept (% of all edges)", yaxis_title="faithfulness (m(C)-m(empty))/(m(N)-m(empty))",
        template="plotly_white", height=420)
    fig.update_xaxes(type="log")
    return fig


def app_view(block: dict, primary: str) -> dict:
    """Top-level keys the app's faithfulness panel reads (sizes/values/cpr/cmd/ablation)."""
    res = (block.get("ablations") or {}).get(primary)
    if not res:
        return {}
    c = res["curve_abs"]
    return {"sizes": c["edges_kept"], "values": c["faithfulness"], "cpr": res["cpr"], "cmd": res["cmd"],
            "ablation": primary}


def result_record(run_id: str, graph: CausalGraph, config: dict, task: dict, model_cfg: dict,
                  verify: Optional[dict], timings: dict, figures: list[str]) -> dict:
    """The schema_version 1 ``result.json`` of a circuit run."""
    m = graph.meta
    return {"schema_version": 1, "kind": "circuit", "recipe": None, "run_id": run_id,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "config": config,
            "model": model_cfg, "task": task, "method": m.method, "ablation": m.ablation,
            "metric": {"name": m.metric}, "passes": m.passes, "scores": {}, "verify": verify, "timings": timings,
            "summary": summary_dict(graph),
            "files": {"graph": "graph.json", "figures": figures, "tensors": None}}


def summary_dict(graph: CausalGraph) -> dict:
    from .prune import circuit_nodes

    f = graph.faithfulness or {}
    return {"nodes": len(graph.nodes), "edges": len(graph.edges), "edges_kept": len(graph.circuit_edges),
            "circuit_nodes": len(circuit_nodes(graph)), "passes": graph.meta.passes,
            "cpr": {a: r["cpr"] for a, r in (f.get("ablations") or {}).items()},
            "cmd": {a: r["cmd"] for a, r in (f.get("ablations") or {}).items()}}


def summary_lines(graph: CausalGraph, kept_faithfulness: Optional[float] = None) -> list[str]:
    s = summary_dict(graph)
    m = graph.meta
    lines = [f"{m.method} ({m.ablation}) on {m.model} / {m.task} (n={m.n_prompts}, metric {m.metric})",
             f"graph: {s['nodes']} nodes, {s['edges']} edges; circuit: {s['edges_kept']} edges kept, "
             f"{s['circuit_nodes']} component nodes",
             f"passes: {m.passes.get('forward', 0)} forward, {m.passes.get('backward', 0)} backward"]
    c = (m.params or {}).get("completeness")
    if c:
        rel = c.get("rel_error")
        rel_s = "undefined" if rel is None else f"{100 * rel:.1f} %"
        lines.append(f"IG completeness: m(clean) - m(ref input) {c['delta_metric']:.4g}, integrated gradients "
                     f"{c['ig_sum']:.4g} ({rel_s} off, {c['points']} points"
                     + (f", {c['refined_points']} added by --ig-refine" if c.get("refined_points") else "") + ")"
                     + ("; raise --steps or use --ig-refine N" if rel is None or rel > 0.1 else ""))
    if kept_faithfulness is not None:
        lines.append(f"faithfulness of the kept circuit: {kept_faithfulness:.3f}")
    for a in s["cpr"]:
        lines.append(f"faithfulness ({a}): CPR {s['cpr'][a]:.3f}, CMD {s['cmd'][a]:.3f}")
    return lines
