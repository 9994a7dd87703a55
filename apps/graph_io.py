"""The graph page's callback bodies as plain functions of (settings, control values).

Each function reads what it needs from the runs directory (through :mod:`apps.data`, so
never outside it), calls the pure builders of :mod:`apps.graph_view`, and returns plain
data; the page module only wires them to component ids.
"""

from __future__ import annotations

from typing import Any, Optional

from .data import AppDataError, check_run_id, graph_path, load_graph_json, load_result
from .graph_data import GraphData, parse_graph
from .graph_view import MODES, View, ViewParams, build_view, export_view, neighbours, node_concept, node_values


def load_graph(settings, run_id: Any) -> GraphData:
    """The validated graph of ``run_id`` (AppDataError with one line if anything is wrong)."""
    path = graph_path(settings.runs_dir, run_id)  # path checks on every call, cached or not

    def load() -> GraphData:
        raw = load_graph_json(settings.runs_dir, run_id, settings.max_file_bytes)
        return parse_graph(raw, f"graph of run {run_id!r}")

    cache = getattr(settings, "cache", None)
    if cache is None or not path.is_file():
        return load()
    return cache.get_or_load(path, settings.max_file_bytes, load)


def ig_completeness_fact(settings, run) -> str:
    """'IG completeness …' for EAP-IG graphs (how far the integrated gradients are from
    m(clean) - m(ref input)), flagged when more than 10 % off; '' for other graphs."""
    params = load_graph(settings, run).metadata.get("params")
    c = params.get("completeness") if isinstance(params, dict) else None
    if not isinstance(c, dict):
        return ""
    rel = c.get("rel_error")
    if not isinstance(rel, (int, float)):
        return "IG completeness undefined (m(clean) = m(ref))"
    flag = " ⚠ more steps or --ig-refine" if rel > 0.1 else ""
    return f"IG completeness {100 * rel:.1f} % off ({c.get('points', '?')} points){flag}"


def _result_or_none(settings, run_id: str) -> Optional[dict]:
    try:
        return load_result(settings.runs_dir, run_id)
    except AppDataError:
        return None


def run_tokens(graph: GraphData, result: Optional[dict]) -> Optional[list]:
    """Token strings of the prompt the graph was computed on (graph metadata, else result labels)."""
    toks = graph.metadata.get("tokens")
    if isinstance(toks, list):
        return [str(t) for t in toks]
    for sc in ((result or {}).get("scores") or {}).values():
        labels = sc.get("labels") if isinstance(sc, dict) and isinstance(sc.get("labels"), dict) else {}
        for key in ("tokens", "pos"):
            if isinstance(labels.get(key), list) and any(isinstance(t, str) for t in labels[key]):
                return [str(t) for t in labels[key]]
    return None


def params_from(mode: Any, value: Any, options: Any, pinned: Any) -> ViewParams:
    """ViewParams from raw control values (anything unexpected falls back to a default)."""
    opts = options if isinstance(options, list) else []
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = 40.0
    pins = tuple(p for p in (pinned or []) if isinstance(p, str))[:200] if isinstance(pinned, list) else ()
    return ViewParams(mode=mode if mode in MODES else "top", value=min(max(v, 0.0), 100.0),
                      show_gt="gt" in opts, pinned=pins, pinned_only="pinned_only" in opts and bool(pins),
                      circuit_only="circuit_only" in opts)


def render(settings, run_id: Any, params: ViewParams, compare: Any = None) -> tuple[View, GraphData, Optional[GraphData]]:
    """The view of ``run_id`` (and of ``compare`` as graph B when given)."""
    a = load_graph(settings, run_id)
    b = None
    if compare:
        check_run_id(compare)
        if compare == run_id:
            raise AppDataError("compare needs a different run than the one shown")
        b = load_graph(settings, compare)
    view = build_view(a, params, b, tokens=run_tokens(a, _result_or_none(settings, run_id)))
    return view, a, b


def export_json(settings, run_id: Any, params: ViewParams, compare: Any = None) -> dict:
    """The current view as graph JSON (the Export JSON download)."""
    view, a, b = render(settings, run_id, params, compare)
    return export_view(a, view, params, run_id, compare or None, b)


def node_details(settings, run_id: Any, node_id: Any) -> dict:
    """Everything the node panel shows: the node, its values and its strongest neighbours."""
    if not isinstance(node_id, str):
        raise AppDataError("click a node to see its neighbours")
    g = load_graph(settings, run_id)
    if node_id not in g.index:
        raise AppDataError(f"node {node_id[:80]!r} is not in the graph of run {run_id!r}")
    node = g.nodes[g.index[node_id]]
    return {"node": node, "values": node_values(node, _result_or_none(settings, run_id)),
            "run": run_id, "concept": node_concept(node), "unit": _unit_info(settings, run_id, node_id),
            **neighbours(g, node_id)}


def _unit_info(settings, run_id: Any, node_id: str) -> Optional[dict]:
    """The unit's row in the run's ``labels.json`` (dissection runs), or None when there is none."""
    from .units_data import load_labels, unit_of_node, unit_row

    try:
        labels = load_labels(settings, run_id)
    except AppDataError:
        return None
    found = unit_of_node(labels, node_id)
    row = unit_row(labels, *found) if found else None
    return {**row, "site": found[0]} if row else None


def pins_after(trigger: Any, selected: Any, pinned: Any) -> list:
    """Pinned ids after a click on ``pin`` (add the selected node) or ``clear``."""
    from .components.ids import GraphIds

    pins = [p for p in (pinned or []) if isinstance(p, str)]
    if trigger == GraphIds.clear:
        return []
    if trigger == GraphIds.pin and isinstance(selected, str) and selected not in pins:
        pins.append(selected)
    return pins
