"""Graph exports (GraphML, DOT) and the circuit-tracer / Neuronpedia graph JSON, both ways.

circuit-tracer's ``create_graph_files`` writes ``{"metadata": {...}, "qParams": {...},
"nodes": [{node_id, feature, layer (str), ctx_idx, feature_type, jsNodeId, clerp, ...}],
"links": [{source, target, weight}]}``. Export maps our node types onto its
``feature_type`` strings (``embedding``, ``logit``, ``cross layer transcoder``,
``mlp reconstruction error``, and ``attention head`` / ``mlp`` / ``neuron`` for
components), keeps receiver ports and edge provenance as extra link keys, and stores our
graph metadata under ``metadata["interpbench"]`` so that export -> import is lossless.
Import reads any circuit-tracer graph: ``layer == "E"`` -> input (layer -1), ``logit``
nodes -> logits, other layers -> ints; link weights become scores with method
``circuit-tracer`` and ablation ``none``.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from ..paths import atomic_write_text
from .ir import CausalGraph, Edge, GraphError, GraphMeta, Node, split_receiver, validate

_CT_TYPE = {"input": "embedding", "logits": "logit", "feature": "cross layer transcoder",
            "error": "mlp reconstruction error", "attention": "attention head", "mlp": "mlp", "neuron": "neuron"}
_FROM_CT = {"embedding": "input", "logit": "logits", "cross layer transcoder": "feature", "transcoder": "feature",
            "mlp reconstruction error": "error", "lorsa": "feature", "attention head": "attention", "mlp": "mlp",
            "neuron": "neuron"}


# -- GraphML / DOT ------------------------------------------------------------------------
def to_graphml(g: CausalGraph, circuit_only: bool = False) -> str:
    """GraphML text (node type/layer, edge score/method/ablation/port as data keys)."""
    keys = [("type", "node", "string"), ("layer", "node", "int"), ("score", "edge", "double"),
            ("method", "edge", "string"), ("ablation", "edge", "string"), ("port", "edge", "string"),
            ("in_circuit", "edge", "boolean")]
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">']
    out += [f'  <key id="{k}" for="{f}" attr.name="{k}" attr.type="{t}"/>' for k, f, t in keys]
    out.append(f'  <graph id={quoteattr(g.meta.task or "graph")} edgedefault="directed">')
    for n in g.nodes:
        out.append(f'    <node id={quoteattr(n.id)}><data key="type">{escape(n.type)}</data>'
                   f'<data key="layer">{n.layer}</data></node>')
    for i, e in enumerate(g.edges):
        if circuit_only and not e.in_circuit:
            continue
        node, port = split_receiver(e.target)
        out.append(f'    <edge id="e{i}" source={quoteattr(e.source)} target={quoteattr(node)}>'
                   f'<data key="score">{e.score!r}</data><data key="method">{escape(e.method)}</data>'
                   f'<data key="ablation">{escape(e.ablation)}</data><data key="port">{port or ""}</data>'
                   f'<data key="in_circuit">{"true" if e.in_circuit else "false"}</data></edge>')
    out += ["  </graph>", "</graphml>"]
    return "\n".join(out) + "\n"


def to_dot(g: CausalGraph, circuit_only: bool = True) -> str:
    """Graphviz DOT text; edge colour = sign, pen width ~ |score|, port as the edge label."""
    edges = [e for e in g.edges if e.in_circuit or not circuit_only]
    used = {e.source for e in edges} | {split_receiver(e.target)[0] for e in edges}
    top = max((abs(e.score) for e in edges), default=1.0) or 1.0
    lines = [f"digraph {json.dumps(g.meta.task or 'circuit')} {{", "  rankdir=BT;", "  node [shape=box];"]
    for n in g.nodes:
        if n.id in used or not circuit_only:
            lines.append(f"  {json.dumps(n.id)} [label={json.dumps(n.id)}, group={n.layer}];")
    for e in edges:
        node, port = split_receiver(e.target)
        colour = "blue" if e.score >= 0 else "red"
        width = 0.5 + 3.0 * abs(e.score) / top
        label = f", label={json.dumps(port)}" if port else ""
        lines.append(f"  {json.dumps(e.source)} -> {json.dumps(node)} [color={colour}, penwidth={width:.2f}{label}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- circuit-tracer / Neuronpedia ----------------------------------------------------------
def to_circuit_tracer(g: CausalGraph, slug: str = "interpbench", prompt_tokens: tuple[str, ...] = ()) -> dict:
    """The graph as circuit-tracer / Neuronpedia graph JSON (a dict)."""
    n_layers = int(g.meta.model_cfg.get("n_layers", max((n.layer for n in g.nodes), default=0)))
    nodes = []
    for i, n in enumerate(g.nodes):
        layer = "E" if n.type == "input" else str(n_layers + 1 if n.type == "logits" else n.layer)
        feature = n.index if n.index is not None else (n.head if n.head is not None else i)
        d = {"node_id": n.id, "feature": int(feature), "layer": layer, "ctx_idx": int(n.pos or 0),
             "feature_type": _CT_TYPE[n.type], "jsNodeId": n.id, "clerp": n.label or n.id}
        if n.score is not None:
            d["influence"] = n.score
        nodes.append(d)
    links = []
    for e in g.edges:
        node, port = split_receiver(e.target)
        link = {"source": e.source, "target": node, "weight": e.score, "method": e.method, "ablation": e.ablation}
        if port:
            link["port"] = port
        if not e.in_circuit:
            link["in_circuit"] = False
        if e.exact is not None:
            link["exact"] = e.exact
        if e.ci is not None:
            link["ci"] = list(e.ci)
        links.append(link)
    meta = {"slug": slug, "scan": g.meta.model, "transcoder_list": [], "prompt_tokens": list(prompt_tokens),
            "prompt": "".join(prompt_tokens), "schema_version": 1,
            "interpbench": {"meta": g.meta.to_dict(), "faithfulness": g.faithfulness,
                            "nodes": {n.id: n.to_dict() for n in g.nodes}}}
    qparams = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": meta, "qParams": qparams, "nodes": nodes, "links": links}


def from_circuit_tracer(d: dict) -> CausalGraph:
    """Read a circuit-tracer / Neuronpedia graph JSON dict (ours or circuit-tracer's own)."""
    if not isinstance(d, dict) or not isinstance(d.get("nodes"), list) or not isinstance(d.get("links"), list):
        raise GraphError("not a circuit-tracer graph: expected an object with 'metadata', 'nodes' and 'links'")
    meta_in = d.get("metadata") or {}
    ours = meta_in.get("interpbench") or {}
    saved_nodes = ours.get("nodes") or {}
    layers_numeric = [int(n["layer"]) for n in d["nodes"] if str(n.get("layer", "")).lstrip("-").isdigit()]
    logit_layer = max(layers_numeric, default=0)
    nodes = []
    for n in d["nodes"]:
        try:
            nid = str(n["node_id"])
            if nid in saved_nodes:
                nodes.append(Node.from_dict(saved_nodes[nid]))
                continue
            ftype = str(n["feature_type"])
            layer_s = str(n["layer"])
        except KeyError as e:
            raise GraphError(f"circuit-tracer node {n!r} lacks {e.args[0]!r}") from None
        ntype = _FROM_CT.get(ftype)
        if ntype is None:
            raise GraphError(f"circuit-tracer node {nid!r} has unknown feature_type {ftype!r}; "
                             f"known: {', '.join(sorted(_FROM_CT))}")
        layer = -1 if layer_s == "E" else int(layer_s)
        if ntype == "logits":
            layer = max(layer, logit_layer)
        nodes.append(Node(nid, ntype, layer, pos=int(n.get("ctx_idx", 0)), index=n.get("feature"),
                          score=n.get("influence"), label=str(n.get("clerp", "") or "")))
    edges = []
    for ln in d["links"]:
        try:
            target = ln["target"] + (f"<{ln['port']}>" if ln.get("port") else "")
            ci = ln.get("ci")
            edges.append(Edge(str(ln["source"]), target, float(ln["weight"]), str(ln.get("method", "circuit-tracer")),
                              str(ln.get("ablation", "none")), bool(ln.get("in_circuit", True)),
                              None if ln.get("exact") is None else float(ln["exact"]),
                              None if ci is None else (float(ci[0]), float(ci[1]))))
        except KeyError as e:
            raise GraphError(f"circuit-tracer link {ln!r} lacks {e.args[0]!r}") from None
    if ours.get("meta"):
        meta = GraphMeta.from_dict(ours["meta"])
    else:
        meta = GraphMeta(model=str(meta_in.get("scan", "")), method="circuit-tracer", ablation="none",
                         params={"slug": meta_in.get("slug", ""), "prompt": meta_in.get("prompt", "")})
    g = CausalGraph(tuple(nodes), tuple(edges), meta, ours.get("faithfulness"))
    validate(g)
    return g


def write_exports(g: CausalGraph, out_dir, stem: str = "graph") -> dict[str, Path]:
    """Write ``graph.graphml``, ``graph.dot`` and ``graph.circuit_tracer.json`` into ``out_dir``."""
    out = Path(out_dir)
    paths = {"graphml": out / f"{stem}.graphml", "dot": out / f"{stem}.dot",
             "circuit_tracer": out / f"{stem}.circuit_tracer.json"}
    atomic_write_text(paths["graphml"], to_graphml(g))
    atomic_write_text(paths["dot"], to_dot(g))
    atomic_write_text(paths["circuit_tracer"], json.dumps(to_circuit_tracer(g), allow_nan=False))
    return paths


def load_circuit_tracer(path) -> CausalGraph:
    path = Path(path)
    try:
        return from_circuit_tracer(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as e:
        raise GraphError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})") from None
