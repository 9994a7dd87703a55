"""What the graph page shows: pruning, comparison, overlays and cytoscape elements (pure).

Steps of one view (all server-side; the browser only receives the kept elements):

1. Candidate edges: every edge, or only the edges the method kept (``in_circuit``), and/or
   only edges between pinned nodes ("pinned subgraph").
2. Prune by |score|: ``top`` keeps the n largest, n on a log scale of the slider
   (0 → 1 edge, 100 → all); ``threshold`` keeps |score| ≥ slider% × max |score|. At most
   :data:`MAX_VIEW_EDGES` edges are ever sent to the browser (the rest are reported).
3. Compare (optional): the same pruning on graph B; edges are keyed by (source, target)
   and classed ``only-a`` / ``only-b`` / ``both``.
4. Ground-truth overlay (optional): kept edges that are in the known circuit get class
   ``gt``; known edges that pruning dropped are added as ``gt-missing`` so they are seen.
5. Nodes: endpoints of shown edges plus pinned nodes, at preset positions computed for
   the nodes shown (rows fixed by the whole graph's layers, one column per position in
   view), with row (layer) and column (token) labels as non-selectable ``axis`` nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .graph_data import GraphData, Layout, LayoutRef, compute_layout

MAX_VIEW_EDGES = 2000
"""Most edges sent to the browser in one view."""
MODES = ("top", "threshold")


@dataclass(frozen=True)
class ViewParams:
    """The controls of the graph page (everything a view depends on besides the graphs)."""

    mode: str = "top"
    """``top`` (keep the n strongest edges) or ``threshold`` (keep |score| ≥ a fraction of the max)."""
    value: float = 50.0
    """Slider position, 0-100."""
    show_gt: bool = True
    """Overlay the ground-truth circuit when the graph has one."""
    pinned: tuple = ()
    """Pinned node ids (always shown, highlighted)."""
    pinned_only: bool = False
    """Restrict the view to edges between pinned nodes."""
    circuit_only: bool = False
    """Restrict the view to edges the method kept in its circuit (``in_circuit``)."""

    def to_dict(self) -> dict:
        return {"mode": self.mode, "value": self.value, "show_gt": self.show_gt, "pinned": list(self.pinned),
                "pinned_only": self.pinned_only, "circuit_only": self.circuit_only}


@dataclass(frozen=True)
class Pruned:
    """Edges kept by one pruning of one graph."""

    kept: np.ndarray
    """Edge indices kept, strongest first."""
    n_candidates: int
    """Edges considered (after the pinned-subgraph filter)."""
    threshold: float
    """Smallest |score| kept (0 when nothing is kept)."""
    capped: int
    """Edges that passed the pruning but were not sent because of MAX_VIEW_EDGES."""


def slider_to_n(value: float, n_edges: int) -> int:
    """Top-n from the slider: log scale from 1 (value 0) to ``n_edges`` (value 100)."""
    if n_edges <= 0:
        return 0
    v = min(max(float(value), 0.0), 100.0) / 100.0
    return max(1, min(n_edges, int(round(math.exp(v * math.log(n_edges))))))


def candidates(graph: GraphData, params: ViewParams) -> np.ndarray:
    """Step 1: indices of the edges pruning may keep (circuit / pinned-subgraph filters)."""
    cand = np.arange(len(graph.score))
    if params.circuit_only:
        cand = cand[graph.in_circuit[cand]]
    if params.pinned_only:
        pinned = np.array([graph.index[p] for p in params.pinned if p in graph.index], dtype=np.int32)
        cand = cand[np.isin(graph.src[cand], pinned) & np.isin(graph.tgt[cand], pinned)]
    return cand


def prune(graph: GraphData, params: ViewParams, cap: int = MAX_VIEW_EDGES) -> Pruned:
    """Steps 1-2: the edges of ``graph`` kept by ``params`` (strongest first)."""
    cand = candidates(graph, params)
    mag = np.abs(graph.score[cand])
    if params.mode == "threshold":
        t = min(max(float(params.value), 0.0), 100.0) / 100.0 * (float(mag.max()) if len(mag) else 0.0)
        sel = np.flatnonzero(mag >= t)
        sel = sel[np.argsort(-mag[sel], kind="stable")]
    else:
        n = slider_to_n(params.value, len(cand))
        if n < len(cand):
            part = np.argpartition(-mag, n - 1)[:n]
            sel = part[np.argsort(-mag[part], kind="stable")]
        else:
            sel = np.argsort(-mag, kind="stable")
    capped = max(0, len(sel) - cap)
    sel = sel[:cap]
    thr = float(mag[sel[-1]]) if len(sel) else 0.0
    return Pruned(cand[sel], len(cand), thr, capped)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _ci_text(ci: Any) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
        return f"[{ci[0]:.4g}, {ci[1]:.4g}]"
    return "n/a"


def _short(node_id: str) -> str:
    return node_id.split("@", 1)[0]


def _token_text(tok: Any) -> str:
    return str(tok).replace(" ", "␣").replace("\n", "↵")[:16]


def _edge_element(g: GraphData, j: int, width: float, classes: list[str], graph_tag: str) -> dict:
    e = g.edges[j]
    s = float(g.score[j])
    data = {"id": f"{e['source']}->{e['target']}", "source": e["source"], "target": g.nodes[int(g.tgt[j])]["id"],
            "receiver": e["target"], "score": round(s, 6), "w": round(width, 2), "ci": _ci_text(e.get("ci")),
            "method": str(e.get("method", g.metadata.get("method", "n/a"))),
            "ablation": str(e.get("ablation", g.metadata.get("ablation", "n/a"))), "graph": graph_tag}
    if isinstance(e.get("exact"), (int, float)):
        data["exact"] = e["exact"]
    return {"data": data, "classes": " ".join(["pos" if s >= 0 else "neg", *classes])}


def node_concept(node: dict) -> Optional[str]:
    """The unit label a node carries (dissection graphs: ``label`` = the unit's concept), or None."""
    lab = node.get("label")
    return lab if isinstance(lab, str) and lab.strip() else None


def node_caption(node: dict, limit: int = 28) -> str:
    """Text drawn on a node: its short id, plus ``· concept`` when it carries a unit label."""
    short, concept = _short(node["id"]), node_concept(node)
    if concept is None or concept == short or short.endswith("." + concept):
        return short
    return f"{short} · {concept if len(concept) <= limit else concept[:limit - 1] + '…'}"


def _node_element(node: dict, xy: tuple, classes: list[str]) -> dict:
    data = {"id": node["id"], "label": node_caption(node), "type": node["type"], "layer": node.get("layer"),
            "pos": node.get("pos")}
    if node_concept(node) is not None:
        data["concept"] = node_concept(node)
        if data["label"] != _short(node["id"]):  # the caption carries the concept: draw it under the node
            classes = [*classes, "labelled"]
    for k in ("score", "attribution", "effect"):
        if isinstance(node.get(k), (int, float)):
            data[k] = node[k]
    return {"data": data, "position": {"x": xy[0], "y": xy[1]}, "classes": " ".join([node["type"], *classes])}


def axis_elements(layout: Layout, tokens: Optional[list]) -> list[dict]:
    """Row labels (layers) left of the graph and column labels (positions/tokens) under it."""
    out = []
    for label, y in layout.rows:
        out.append({"data": {"id": f"__row:{label}", "label": label, "type": "axis"},
                    "position": {"x": layout.x_min - 90, "y": y}, "classes": "axis",
                    "selectable": False, "grabbable": False})
    for p, x in layout.cols:
        tok = f" {_token_text(tokens[p])}" if tokens and 0 <= p < len(tokens) else ""
        out.append({"data": {"id": f"__col:{p}", "label": f"{p}{tok}", "type": "axis"},
                    "position": {"x": x, "y": layout.y_max + 60}, "classes": "axis",
                    "selectable": False, "grabbable": False})
    return out


@dataclass(frozen=True)
class View:
    """One rendered view: the cytoscape elements and what they mean."""

    elements: list
    """Cytoscape elements (nodes, edges, axis labels)."""
    summary: str
    """One line: edges/nodes shown, threshold, caps, comparison and ground-truth counts."""
    node_ids: tuple
    """Graph node ids shown."""
    edge_keys: tuple
    """(source, target, tag) of the shown edges; tag is a, b, both or gt-missing."""


def build_view(a: GraphData, params: ViewParams, b: Optional[GraphData] = None,
               tokens: Optional[list] = None, layout: Optional[Layout] = None, cap: int = MAX_VIEW_EDGES) -> View:
    """Steps 1-5 for graph ``a`` (and ``b`` when comparing)."""
    pa = prune(a, params, cap)
    nodes: dict[str, dict] = {}
    shown: dict[tuple, tuple] = {}  # (src, tgt) -> (graph, edge index, tag)
    for j in pa.kept.tolist():
        e = a.edges[j]
        shown[(e["source"], e["target"])] = (a, j, "a")
    b_score: dict[tuple, float] = {}
    if b is not None:
        for j in prune(b, params, cap).kept.tolist():
            e = b.edges[j]
            key = (e["source"], e["target"])
            if key in shown:
                shown[key] = (shown[key][0], shown[key][1], "both")
                b_score[key] = round(float(b.score[j]), 6)
            else:
                shown[key] = (b, j, "b")
    gt = set(a.ground_truth or ()) if params.show_gt else set()
    missing = []
    if gt:
        allowed = set(candidates(a, params).tolist())
        lookup = {(e["source"], e["target"]): j for j, e in enumerate(a.edges)}
        for key in sorted(gt - set(shown)):
            if lookup.get(key) in allowed:
                missing.append(lookup[key])
    mags = [abs(float(g.score[j])) for g, j, _ in shown.values()] + [abs(float(a.score[j])) for j in missing]
    top = max(mags) if mags else 1.0
    top = top if top > 0 else 1.0
    elements, keys = [], []
    compare_cls = {"a": "only-a", "b": "only-b", "both": "both"}
    for (s, t), (g, j, tag) in shown.items():
        cls = [compare_cls[tag]] if b is not None else []
        if (s, t) in gt:
            cls.append("gt")
        elements.append(_edge_element(g, j, 1 + 7 * abs(float(g.score[j])) / top, cls, tag))
        if (s, t) in b_score:
            elements[-1]["data"]["score_b"] = b_score[(s, t)]
        keys.append((s, t, tag if b is not None else "a"))
        for k in (int(g.src[j]), int(g.tgt[j])):
            nodes.setdefault(g.nodes[k]["id"], g.nodes[k])
    for j in missing:
        e = a.edges[j]
        elements.append(_edge_element(a, j, 1.5, ["gt-missing"], "gt"))
        keys.append((e["source"], e["target"], "gt-missing"))
        for k in (int(a.src[j]), int(a.tgt[j])):
            nodes.setdefault(a.nodes[k]["id"], a.nodes[k])
    for p in params.pinned:
        for g in (a, b):
            if g is not None and p in g.index:
                nodes.setdefault(p, g.nodes[g.index[p]])
    if layout is None:
        ref = a.layout_ref or LayoutRef.of(a.nodes)
        if b is not None:
            ref = ref.merge(b.layout_ref or LayoutRef.of(b.nodes))
        layout = compute_layout(list(nodes.values()), ref)
    pinned = set(params.pinned)
    node_els = []
    for nid, n in nodes.items():
        xy = layout.pos.get(nid, (0.0, 0.0))
        node_els.append(_node_element(n, xy, ["pinned"] if nid in pinned else []))
    scope = [w for w, on in (("circuit edges", params.circuit_only), ("pinned subgraph", params.pinned_only)) if on]
    parts = [f"showing {len(shown)} of {pa.n_candidates:,} edges" + (f" ({', '.join(scope)})" if scope else ""),
             f"{len(nodes)} nodes", f"|score| ≥ {pa.threshold:.4g}"]
    if pa.capped:
        parts.append(f"{pa.capped:,} more edges pass but the view is capped at {cap:,}")
    if b is not None:
        n_both = sum(1 for *_, tag in shown.values() if tag == "both")
        n_a = sum(1 for *_, tag in shown.values() if tag == "a")
        parts.append(f"compare: {n_a} only in A, {len(shown) - n_a - n_both} only in B, {n_both} in both")
    if params.show_gt and a.ground_truth:
        hit = len(gt & set(shown))
        parts.append(f"ground truth: {hit} of {len(gt)} known edges in view ({len(missing)} dashed = pruned away)")
    return View(node_els + elements + axis_elements(layout, tokens), "; ".join(parts),
                tuple(nodes), tuple(keys))


def hover_lines(data: Optional[dict]) -> list[str]:
    """Info-panel lines for a hovered node or edge (cytoscape ``mouseover*Data``)."""
    if not data or data.get("type") == "axis":
        return []
    if "source" in data:
        lines = [f"edge {data['source']} → {data.get('receiver', data['target'])}", f"score {_fmt(data.get('score'))}",
                 f"CI {data.get('ci', 'n/a')}", f"method {data.get('method', 'n/a')}",
                 f"ablation {data.get('ablation', 'n/a')}"]
        if "exact" in data:
            lines.insert(2, f"exact {_fmt(data['exact'])}")
        if "score_b" in data:
            lines[1] = f"score {_fmt(data.get('score'))} (A), {_fmt(data['score_b'])} (B)"
        return lines
    lines = [f"node {data.get('id')} ({data.get('type')})",
             f"layer {data.get('layer')}" + (f", position {data['pos']}" if data.get("pos") is not None else "")]
    if isinstance(data.get("concept"), str):
        lines.insert(1, f"label {data['concept']}")
    for k in ("score", "attribution", "effect"):
        if k in data:
            lines.append(f"{k} {_fmt(data[k])}")
    return lines


def neighbours(g: GraphData, node_id: str, k: int = 12) -> dict:
    """The strongest incoming and outgoing edges of ``node_id`` in the full graph."""
    if node_id not in g.index:
        return {"incoming": [], "outgoing": [], "n_in": 0, "n_out": 0}
    i = g.index[node_id]
    out: dict = {}
    for name, count, mask, other in (("incoming", "n_in", g.tgt == i, g.src), ("outgoing", "n_out", g.src == i, g.tgt)):
        idx = np.flatnonzero(mask)
        idx = idx[np.argsort(-np.abs(g.score[idx]), kind="stable")]
        out[count] = int(len(idx))
        out[name] = [{"node": str(g.edges[j]["target"]) if name == "outgoing" else
                      g.nodes[int(other[j])]["id"] + (f" (→{_port(g, j)})" if _port(g, j) else ""),
                      "score": float(g.score[j]),
                      "ci": _ci_text(g.edges[j].get("ci"))} for j in idx[:k].tolist()]
    return out


def node_values(node: dict, result: Optional[dict]) -> list[tuple[str, float]]:
    """Patching / attribution values of a node: its own numeric fields and the run's score arrays."""
    vals = [(k, float(v)) for k, v in node.items()
            if k not in ("layer", "pos", "head", "index") and isinstance(v, (int, float)) and not isinstance(v, bool)]
    scores = (result or {}).get("scores")
    if not isinstance(scores, dict):
        return vals
    layer, pos = node.get("layer"), node.get("pos")
    if node["type"] in ("input", "logits") or not isinstance(layer, int) or layer < 0:
        return vals
    from .graph_data import node_head

    head, _ = node_head(node)
    coord = {"head": head if node["type"] == "attention" and head >= 0 else None, "pos": pos}
    for name, sc in scores.items():
        if not isinstance(sc, dict) or not isinstance(sc.get("values"), list):
            continue
        axes = sc.get("axes") if isinstance(sc.get("axes"), list) else []
        if axes[:1] != ["layer"] or len(axes) < 2 or any(not isinstance(coord.get(ax), int) or coord[ax] < 0
                                                               for ax in axes[1:]):
            continue
        layers = (sc.get("labels") or {}).get("layer") if isinstance(sc.get("labels"), dict) else None
        if isinstance(layers, list) and layer not in layers:
            continue
        row = layers.index(layer) if isinstance(layers, list) else layer
        try:
            v = sc["values"][row]
            for ax in axes[1:]:
                v = v[coord[ax]]
        except (IndexError, TypeError, KeyError):
            continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals.append((f"{name}[" + ", ".join(f"{ax}={coord[ax]}" for ax in axes[1:]) + "]", float(v)))
    return vals


def export_view(g: GraphData, view: View, params: ViewParams, run_id: str, compare: Optional[str] = None,
                b: Optional[GraphData] = None) -> dict:
    """The current view as a schema_version 1 graph JSON (what the Export JSON button downloads)."""
    nodes = []
    for nid in view.node_ids:
        src = g if nid in g.index else b
        nodes.append(src.nodes[src.index[nid]])
    edges, lookups = [], {}
    for s, t, tag in view.edge_keys:
        src = b if (tag == "b" and b is not None) else g
        if id(src) not in lookups:
            lookups[id(src)] = _edge_lookup(src)
        j = lookups[id(src)][(s, t)]
        e = dict(src.edges[j])
        if b is not None or tag == "gt-missing":
            e["view"] = {"a": "only_a", "b": "only_b", "both": "both", "gt-missing": "ground_truth_pruned"}[tag]
        edges.append(e)
    meta = dict(g.metadata)
    meta["view"] = {"run": run_id, "compare": compare, **params.to_dict()}
    return {"schema_version": 1, "nodes": nodes, "edges": edges, "metadata": meta,
            "faithfulness": g.faithfulness, "ground_truth": [list(p) for p in g.ground_truth] if g.ground_truth else None}


def _port(g: GraphData, j: int) -> str:
    from .graph_data import split_receiver

    t = g.edges[j].get("target")
    return split_receiver(t)[1] if isinstance(t, str) else ""


def _edge_lookup(g: GraphData) -> dict:
    return {(e["source"], e["target"]): j for j, e in enumerate(g.edges)}
