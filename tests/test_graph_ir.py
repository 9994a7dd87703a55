"""CausalGraph IR: JSON round trip, bad input, GraphML/DOT, circuit-tracer import/export, pruning."""

from __future__ import annotations

import json
import math

import pytest

from interpbench.errors import InterpbenchError
from interpbench.graphs import CausalGraph, Edge, GraphError, GraphMeta, Node, load_graph, port_heads, split_receiver
from interpbench.graphs.export import from_circuit_tracer, to_circuit_tracer, to_dot, to_graphml
from interpbench.graphs.ir import component_node
from interpbench.graphs.prune import cumulative_influence, node_scores, prune_dead, threshold, top_n, top_nodes


def small_graph() -> CausalGraph:
    ids = ["input", "a0.h0", "a0.h1", "m0", "a1.h0", "a1.h1", "m1", "logits"]
    nodes = tuple(component_node(i, 2) for i in ids)
    raw = [("input", "a0.h0<q>", 0.5), ("input", "a0.h1<v>", -0.1), ("a0.h0", "m0", 0.3), ("input", "m0", 0.05),
           ("a0.h0", "a1.h1<k>", 0.8), ("a0.h1", "a1.h0<q>", -0.3), ("m0", "a1.h1<q>", 0.02),
           ("a1.h1", "logits", 1.2), ("a1.h0", "logits", -0.6), ("m1", "logits", 0.01), ("m0", "m1", 0.2)]
    edges = tuple(Edge(s, t, v, "eap", "resample") for s, t, v in raw)
    meta = GraphMeta(model="tiny", task="ioi", metric="logit_diff", data_hash="abc", method="eap", ablation="resample",
                     n_prompts=4, passes={"forward": 3, "backward": 1}, model_cfg={"n_layers": 2, "n_heads": 2,
                                                                                  "n_kv_heads": 2})
    return CausalGraph(nodes, edges, meta)


def test_json_round_trip(tmp_path):
    g = small_graph()
    g = g.with_edges([Edge(e.source, e.target, e.score, e.method, e.ablation, exact=e.score * 2, ci=(0.0, 1.0))
                      if i == 0 else e for i, e in enumerate(g.edges)])
    g = g.with_faithfulness({"cpr": 0.5, "cmd": 0.25})
    path = g.save(tmp_path / "graph.json")
    back = load_graph(path)
    assert back == g
    d = json.loads(path.read_text())
    assert d["schema_version"] == 1
    assert {"id", "type", "layer"} <= set(d["nodes"][1])
    assert {"source", "target", "score", "method", "ablation"} <= set(d["edges"][0])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema_version=99), "schema_version 99"),
    (lambda d: d["edges"].append({"source": "a0.h0", "target": "a9.h9<q>", "score": 1.0, "method": "eap",
                                  "ablation": "zero"}), "missing node 'a9.h9'"),
    (lambda d: d["edges"].append({"source": "logits", "target": "input", "score": 1.0, "method": "eap",
                                  "ablation": "zero"}), "cycle"),
    (lambda d: d["edges"][0].update(score=float("nan")), "non-finite"),
    (lambda d: d["edges"][0].update(ablation="blur"), "unknown ablation"),
    (lambda d: d["nodes"].append(dict(d["nodes"][0])), "duplicate node"),
])
def test_bad_graph_json_is_one_clear_error(tmp_path, mutate, message):
    d = small_graph().to_dict()
    mutate(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(GraphError) as ei:
        load_graph(p)
    assert message in str(ei.value) and "\n" not in str(ei.value)
    assert isinstance(ei.value, InterpbenchError)


def test_not_json_and_missing_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{nope")
    with pytest.raises(GraphError, match="not valid JSON"):
        load_graph(p)
    with pytest.raises(GraphError, match="no graph file"):
        load_graph(tmp_path / "missing.json")


def test_receiver_ids_and_gqa_ports():
    assert split_receiver("a3.h2<q>") == ("a3.h2", "q")
    assert split_receiver("a3.h2@5<k>") == ("a3.h2@5", "k")
    assert split_receiver("a3.h2<v>@5") == ("a3.h2@5", "v")
    assert split_receiver("m4") == ("m4", None)
    # SmolLM2: 9 query heads, 3 KV heads -> KV head 1 feeds query heads 3, 4, 5
    assert port_heads("a7.h1<k>", 9, 3) == ["a7.h3", "a7.h4", "a7.h5"]
    assert port_heads("a7.h1<q>", 9, 3) == ["a7.h1"]
    assert port_heads("a7.h2@4<v>", 9, 3) == ["a7.h6@4", "a7.h7@4", "a7.h8@4"]


def test_graphml_and_dot(tmp_path):
    nx = pytest.importorskip("networkx")
    g = small_graph()
    p = tmp_path / "g.graphml"
    p.write_text(to_graphml(g))
    G = nx.read_graphml(p)
    assert G.number_of_nodes() == len(g.nodes) and G.number_of_edges() == len(g.edges)
    data = G.get_edge_data("a0.h0", "a1.h1")
    assert data["score"] == 0.8 and data["port"] == "k"
    dot = to_dot(g)
    assert dot.startswith('digraph "ioi"') and '"a0.h0" -> "a1.h1"' in dot and 'label="k"' in dot


def test_circuit_tracer_round_trip():
    g = top_n(small_graph(), 4, prune=False).with_faithfulness({"cpr": 0.5})
    ct = json.loads(json.dumps(to_circuit_tracer(g, slug="t")))
    assert {"metadata", "qParams", "nodes", "links"} <= set(ct)
    n0 = ct["nodes"][0]
    assert {"node_id", "feature", "layer", "ctx_idx", "feature_type", "jsNodeId"} <= set(n0)
    assert n0["layer"] == "E" and n0["feature_type"] == "embedding"
    assert all({"source", "target", "weight"} <= set(ln) for ln in ct["links"])
    assert from_circuit_tracer(ct) == g


def test_import_native_circuit_tracer_graph():
    ct = {"metadata": {"slug": "x", "scan": "gemma-2-2b", "transcoder_list": [], "prompt_tokens": ["<bos>", "A"],
                       "prompt": "A", "schema_version": 1},
          "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
          "nodes": [{"node_id": "E_26_0", "feature": 0, "layer": "E", "ctx_idx": 0, "feature_type": "embedding",
                     "jsNodeId": "E_26-0"},
                    {"node_id": "3_1234_1", "feature": 99, "layer": "3", "ctx_idx": 1,
                     "feature_type": "cross layer transcoder", "jsNodeId": "3_1234-0", "clerp": "dogs",
                     "influence": 0.4},
                    {"node_id": "5_-1_1", "feature": -1, "layer": "5", "ctx_idx": 1,
                     "feature_type": "mlp reconstruction error", "jsNodeId": "5_-1-1"},
                    {"node_id": "27_464_1", "feature": 464, "layer": "27", "ctx_idx": 1, "feature_type": "logit",
                     "jsNodeId": "L_464-1", "clerp": 'Output " cat"'}],
          "links": [{"source": "E_26_0", "target": "3_1234_1", "weight": 1.5},
                    {"source": "3_1234_1", "target": "27_464_1", "weight": 2.0},
                    {"source": "5_-1_1", "target": "27_464_1", "weight": -0.5}]}
    g = from_circuit_tracer(ct)
    types = {n.id: (n.type, n.layer, n.pos) for n in g.nodes}
    assert types == {"E_26_0": ("input", -1, 0), "3_1234_1": ("feature", 3, 1), "5_-1_1": ("error", 5, 1),
                     "27_464_1": ("logits", 27, 1)}
    assert [(e.source, e.target, e.score, e.ablation) for e in g.edges][0] == ("E_26_0", "3_1234_1", 1.5, "none")
    assert g.meta.model == "gemma-2-2b"
    # ... and it goes back out and in again unchanged
    assert from_circuit_tracer(to_circuit_tracer(g)) == g


def test_circuit_tracer_bad_input():
    with pytest.raises(GraphError, match="not a circuit-tracer graph"):
        from_circuit_tracer({"nodes": []})
    bad = {"nodes": [{"node_id": "x", "feature": 0, "layer": "1", "ctx_idx": 0, "feature_type": "weird"}], "links": []}
    with pytest.raises(GraphError, match="unknown feature_type 'weird'"):
        from_circuit_tracer(bad)


def test_top_n_threshold_and_prune_dead():
    g = small_graph()
    kept = top_n(g, 3, absolute=True, prune=False)
    assert {(e.source, e.target) for e in kept.circuit_edges} == {("a1.h1", "logits"), ("a0.h0", "a1.h1<k>"),
                                                                 ("a1.h0", "logits")}
    # a1.h0 receives nothing kept, so its edge to the logits is dead; a0.h0 needs input -> a0.h0
    pruned = prune_dead(kept)
    assert {(e.source, e.target) for e in pruned.circuit_edges} == set()
    kept5 = top_n(g, 5, absolute=True)  # adds input->a0.h0<q> (0.5), a0.h1->a1.h0<q> (-0.3)
    assert {(e.source, e.target) for e in kept5.circuit_edges} == {
        ("input", "a0.h0<q>"), ("a0.h0", "a1.h1<k>"), ("a1.h1", "logits")}
    signed = top_n(g, 2, absolute=False, prune=False)
    assert {e.target for e in signed.circuit_edges} == {"logits", "a1.h1<k>"}
    th = threshold(g, 0.3, absolute=True, prune=False)
    assert len(th.circuit_edges) == 6


def test_node_scores_and_top_nodes():
    g = small_graph()
    ns = node_scores(g)
    assert math.isclose(ns["a0.h0"], 1.1) and math.isclose(ns["m0"], 0.22)
    c = top_nodes(g, 2)  # a1.h1 (1.2), a0.h0 (1.1)
    assert {(e.source, e.target) for e in c.circuit_edges} == {
        ("input", "a0.h0<q>"), ("a0.h0", "a1.h1<k>"), ("a1.h1", "logits")}


def test_cumulative_influence_keeps_the_main_path():
    g = small_graph()
    c = cumulative_influence(g, node_threshold=0.7, edge_threshold=0.9)
    kept = {(e.source, e.target) for e in c.circuit_edges}
    assert ("a1.h1", "logits") in kept and ("a0.h0", "a1.h1<k>") in kept
    assert ("m1", "logits") not in kept
    full = cumulative_influence(g, 1.0, 1.0)
    assert len(full.circuit_edges) == len(g.edges)
    with pytest.raises(InterpbenchError, match=r"\[0, 1\]"):
        cumulative_influence(g, 1.5)


def test_cli_register_is_idempotent():
    import typer

    from interpbench.graphs.cli import register

    app = typer.Typer()
    register(app)
    register(app)
    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert names.count("circuit") == 1


def test_cli_bad_mediator_is_one_line_exit_2(capsys):
    import interpbench.cli as cli

    with pytest.raises(SystemExit) as ei:
        cli.main(["circuit", "--model", "unused", "--task", "ioi", "--method", "acdc", "--mediator", "neuron"])
    assert ei.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: method 'acdc' cannot score 'neuron' mediators; no registered method scores 'neuron' "
                   "mediators yet (mediators available: edge, node)")
