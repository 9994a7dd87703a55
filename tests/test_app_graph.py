"""Graph page logic as pure functions: validation, layout, pruning, comparison, overlays."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from apps.cache import GraphCache
from apps.data import AppDataError
from apps.fixtures import synthetic_graph, tiny_graph
from apps.graph_data import LayoutRef, compute_layout, parse_graph, split_receiver
from apps.graph_view import (ViewParams, build_view, export_view, hover_lines, neighbours, node_values, prune,
                             slider_to_n)

TINY_ORDER = ["a1.h1->logits", "a0.h0->a1.h1", "a1.h0->logits", "input->a0.h0", "a0.h1->a1.h0", "a0.h0->m1",
              "input->a0.h1", "input->m0", "m0->a1.h1", "m1->logits"]  # by |score| descending


@pytest.fixture()
def tiny():
    return parse_graph(tiny_graph())


def _ids(g, idx):
    return [f"{g.edges[j]['source']}->{g.edges[j]['target']}" for j in idx]


@pytest.mark.parametrize("mutate, msg", [
    (lambda g: g.pop("nodes"), "needs 'nodes' and 'edges' lists"),
    (lambda g: g.update(schema_version=2), "schema_version 2"),
    (lambda g: g["nodes"].append(dict(g["nodes"][0])), "node id 'input' appears twice"),
    (lambda g: g["nodes"][1].update(layer="1"), "non-integer 'layer' or 'pos'"),
    (lambda g: g["nodes"][1].pop("type"), "needs a string 'type'"),
    (lambda g: g["edges"][0].update(target="a9.h9"), "edge 0 refers to unknown node 'a9.h9'"),
    (lambda g: g["edges"][2].update(score=float("nan")), "edge 2 (input -> m0) needs a finite numeric 'score'"),
    (lambda g: g["edges"][2].update(score="0.5"), "needs a finite numeric 'score'"),
    (lambda g: g.update(ground_truth=[["a"]]), "'ground_truth' must be null or a list"),
    (lambda g: g.update(faithfulness=[1, 2]), "'faithfulness' must be null or an object"),
])
def test_parse_graph_rejects_with_one_line(mutate, msg):
    g = tiny_graph()
    mutate(g)
    with pytest.raises(AppDataError) as exc:
        parse_graph(g, "graph.json")
    assert msg in str(exc.value) and "\n" not in str(exc.value)


def test_parse_graph_arrays_and_receiver_ports():
    g = tiny_graph()
    g["edges"].append({"source": "a0.h0", "target": "a1.h0<q>", "score": -0.05, "method": "eap", "ablation": "mean",
                       "in_circuit": False})
    gd = parse_graph(g)
    assert gd.score.tolist()[-1] == -0.05 and gd.nodes[gd.tgt[-1]]["id"] == "a1.h0"
    assert gd.in_circuit.tolist() == [True] * 10 + [False]
    assert split_receiver("a3.h2@5<q>") == ("a3.h2@5", "q")
    assert split_receiver("a3.h2<k>@5") == ("a3.h2@5", "k")
    assert split_receiver("m4") == ("m4", "")
    assert gd.ground_truth == (("a0.h0", "a1.h1"), ("a1.h1", "logits"), ("m0", "a1.h1"))


def test_slider_to_n_log_scale():
    assert [slider_to_n(v, 10) for v in (0, 40, 50, 100)] == [1, 3, 3, 10]
    assert slider_to_n(50, 20000) == round(math.sqrt(20000))
    assert slider_to_n(-5, 7) == 1 and slider_to_n(500, 7) == 7 and slider_to_n(50, 0) == 0


def test_prune_top_threshold_and_filters(tiny):
    assert _ids(tiny, prune(tiny, ViewParams("top", 100)).kept) == TINY_ORDER
    p = prune(tiny, ViewParams("top", 40))
    assert _ids(tiny, p.kept) == TINY_ORDER[:3] and p.threshold == 0.6 and p.n_candidates == 10
    p = prune(tiny, ViewParams("threshold", 40))  # |score| >= 0.4 * 1.2 = 0.48
    assert _ids(tiny, p.kept) == TINY_ORDER[:4]
    p = prune(tiny, ViewParams("top", 100, pinned=("a0.h0", "a1.h1", "m0"), pinned_only=True))
    assert _ids(tiny, p.kept) == ["a0.h0->a1.h1", "m0->a1.h1"] and p.n_candidates == 2
    p = prune(tiny, ViewParams("top", 100), cap=4)
    assert len(p.kept) == 4 and p.capped == 6


def test_prune_fast_path_matches_naive_sort():
    gd = parse_graph(synthetic_graph(600, 3000, n_layers=4, n_heads=4, seed=3))
    mags = np.abs(gd.score)
    naive = sorted(range(len(mags)), key=lambda j: (-mags[j], j))
    for v in (0, 13, 37, 50, 81, 100):
        kept = prune(gd, ViewParams("top", v), cap=10**9).kept.tolist()
        n = slider_to_n(v, len(mags))
        assert len(kept) == n
        assert sorted(mags[kept].tolist(), reverse=True) == sorted(mags[naive[:n]].tolist(), reverse=True)
    for v in (0, 10, 55):
        kept = prune(gd, ViewParams("threshold", v), cap=10**9).kept.tolist()
        t = v / 100 * mags.max()
        assert sorted(kept) == [j for j in range(len(mags)) if mags[j] >= t]


def test_layout_rows_and_head_columns(tiny):
    lay = compute_layout(tiny.nodes)
    x = {k: v[0] for k, v in lay.pos.items()}
    y = {k: v[1] for k, v in lay.pos.items()}
    # embeddings at the bottom (largest screen y), logits on top, attention below MLP of the same layer
    assert y["input"] > y["a0.h0"] > y["m0"] > y["a1.h0"] > y["m1"] > y["logits"] == 0
    assert y["a0.h0"] == y["a0.h1"]
    # the same head lines up across layers; MLPs sit right of the heads; input/logits centred
    assert x["a0.h1"] == x["a1.h1"] and x["a0.h0"] < x["a0.h1"] < x["m0"] == x["m1"]
    assert x["input"] == x["logits"]
    assert [label for label, _ in lay.rows] == ["embed", "L0 attn", "L0 mlp", "L1 attn", "L1 mlp", "logits"]


def test_layout_positions_as_columns_and_compaction():
    gd = parse_graph(synthetic_graph(158 * 4, 800, n_layers=12, n_heads=12))
    lay = compute_layout(gd.nodes, gd.layout_ref)
    x = {k: v[0] for k, v in lay.pos.items()}
    assert x["a3.h2@0"] < x["a3.h2@1"] < x["a3.h2@2"] < x["a3.h2@3"]
    assert x["a3.h2@1"] == x["a7.h2@1"] and x["m3@1"] > x["a3.h11@1"]
    assert [p for p, _ in lay.cols] == [0, 1, 2, 3]
    # a view of positions 2 and 3 only gets two columns, same rows as the whole graph
    view = [n for n in gd.nodes if n["pos"] in (2, 3)]
    small = compute_layout(view, gd.layout_ref)
    assert [p for p, _ in small.cols] == [2, 3]
    assert small.pos["a3.h2@2"] == lay.pos["a3.h2@0"]
    assert small.pos["a5.h1@2"][1] == lay.pos["a5.h1@2"][1]
    # a column keeps only the slots in use: head 5 and the MLP sit side by side
    packed = compute_layout([gd.nodes[gd.index[i]] for i in ("a3.h5@1", "a4.h5@1", "m3@1")], gd.layout_ref)
    assert packed.pos["m3@1"][0] - packed.pos["a3.h5@1"][0] == 46.0 and packed.pos["a4.h5@1"][0] == packed.pos["a3.h5@1"][0]


def test_build_view_tiny_overlay_and_classes(tiny):
    v = build_view(tiny, ViewParams("top", 40), tokens=None)
    edges = {e["data"]["id"]: e for e in v.elements if "source" in e["data"]}
    assert sorted(edges) == sorted(TINY_ORDER[:3] + ["m0->a1.h1"])
    assert edges["a1.h1->logits"]["classes"] == "pos gt" and edges["a1.h1->logits"]["data"]["w"] == 8.0
    assert edges["a1.h0->logits"]["classes"] == "neg"
    assert edges["m0->a1.h1"]["classes"] == "pos gt-missing"
    assert edges["a0.h0->a1.h1"]["data"]["ci"] == "[0.75, 0.85]"
    assert v.summary == ("showing 3 of 10 edges; 5 nodes; |score| ≥ 0.6; ground truth: 2 of 3 known edges in view "
                         "(1 dashed = pruned away)")
    assert set(v.node_ids) == {"a1.h1", "logits", "a0.h0", "a1.h0", "m0"}
    axis = [e for e in v.elements if e.get("classes") == "axis"]
    assert len(axis) == 6 and all(e["selectable"] is False for e in axis)
    v2 = build_view(tiny, ViewParams("top", 40, show_gt=False, pinned=("input",)))
    assert "ground truth" not in v2.summary and "input" in v2.node_ids
    node = next(e for e in v2.elements if e["data"]["id"] == "input")
    assert node["classes"] == "input pinned"


def test_build_view_compare(tiny):
    g2 = tiny_graph()
    g2["edges"] = [e for e in g2["edges"] if e["target"] != "logits" or e["source"] == "a1.h1"]
    g2["edges"].append({"source": "m0", "target": "logits", "score": 0.9, "method": "eap", "ablation": "patch"})
    b = parse_graph(g2)
    v = build_view(tiny, ViewParams("top", 40, show_gt=False), b)
    classes = {e["data"]["id"]: e["classes"] for e in v.elements if "source" in e["data"]}
    assert classes == {"a1.h1->logits": "pos both", "a0.h0->a1.h1": "pos only-a", "a1.h0->logits": "neg only-a",
                       "m0->logits": "pos only-b"}
    assert "compare: 2 only in A, 1 only in B, 1 in both" in v.summary
    both = next(e["data"] for e in v.elements if e["data"]["id"] == "a1.h1->logits")
    assert hover_lines(both)[1] == "score 1.2 (A), 1.2 (B)"
    doc = export_view(tiny, v, ViewParams("top", 40, show_gt=False), "a", "b", b)
    assert sorted(e["view"] for e in doc["edges"]) == ["both", "only_a", "only_a", "only_b"]
    again = parse_graph(doc)  # the export is itself a valid graph file
    assert len(again.edges) == 4 and again.metadata["view"]["compare"] == "b"


def test_neighbours_values_and_hover(tiny):
    nb = neighbours(tiny, "a0.h0")
    assert nb["n_in"] == 1 and nb["n_out"] == 2
    assert [(e["node"], e["score"]) for e in nb["outgoing"]] == [("a1.h1", 0.8), ("m1", 0.2)]
    assert nb["incoming"][0] == {"node": "input", "score": 0.5, "ci": "[0.45, 0.55]"}
    result = {"scores": {"heads": {"values": [[0.25, -0.5], [0.75, 1.0]], "axes": ["layer", "head"]},
                         "pos": {"values": [[1.0, 2.0]], "axes": ["layer", "pos"]},
                         "sub": {"values": [[9.0, 8.0]], "axes": ["layer", "head"], "labels": {"layer": [1]}}}}
    node = tiny.nodes[tiny.index["a1.h0"]]
    assert node_values(node, result) == [("heads[head=0]", 0.75), ("sub[head=0]", 9.0)]
    assert node_values(tiny.nodes[tiny.index["input"]], result) == []
    assert hover_lines({"source": "a", "target": "b", "receiver": "b<q>", "score": 0.5, "ci": "n/a",
                        "method": "eap", "ablation": "mean"}) == \
        ["edge a → b<q>", "score 0.5", "CI n/a", "method eap", "ablation mean"]
    assert hover_lines({"id": "a1.h0", "type": "attention", "layer": 1, "pos": 3}) == \
        ["node a1.h0 (attention)", "layer 1, position 3"]
    assert hover_lines({"type": "axis"}) == [] and hover_lines(None) == []


def test_graph_cache_keyed_by_file_identity(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(tiny_graph()))
    cache, calls = GraphCache(max_entries=1), []

    def load():
        calls.append(1)
        return parse_graph(json.loads(path.read_text()))

    first = cache.get_or_load(path, 0, load)
    assert cache.get_or_load(path, 0, load) is first and len(calls) == 1
    g = copy.deepcopy(tiny_graph())
    g["edges"] = g["edges"][:3]
    path.write_text(json.dumps(g))  # different size: a new key
    assert len(cache.get_or_load(path, 0, load).edges) == 3 and len(calls) == 2 and len(cache) == 1


def test_layout_ref_merge():
    a = LayoutRef.of(tiny_graph()["nodes"])
    big = LayoutRef.of(synthetic_graph(158, 100, n_layers=12, n_heads=12)["nodes"])
    m = a.merge(big)
    assert (a.top_row, a.rows) == (5, (0, 1, 2, 3, 4, 5))
    assert m.top_row == 25 and m.n_head_slots == 12 and m.per_position and m.rows == tuple(range(26))
    assert a.merge(a) == a


def test_deep_model_rows_compacted_to_the_view():
    g = synthetic_graph(64 * 2, 50, n_layers=31, n_heads=1)  # 31 layers: deeper than COMPACT_LAYERS
    gd = parse_graph(g)
    view = [gd.nodes[gd.index[i]] for i in ("input@0", "a3.h0@0", "m20@1", "logits@1")]
    lay = compute_layout(view, gd.layout_ref)
    assert [label for label, _ in lay.rows] == ["embed", "L3 attn", "L20 mlp", "logits"]
    assert [lay.pos[n["id"]][1] for n in view] == [150.0, 100.0, 50.0, 0.0]


def test_reads_graph_files_written_by_interpbench_graphs(tmp_path):
    from interpbench.graphs.ir import CausalGraph, Edge, GraphMeta, component_node

    nodes = tuple(component_node(i, 2) for i in ("input", "a0.h0", "a0.h1", "m0", "a1.h0", "a1.h1", "m1", "logits"))
    edges = (Edge("input", "a0.h0<q>", 0.5, "eap", "resample"),
             Edge("a0.h0", "a1.h1<k>", -0.25, "eap", "resample", in_circuit=False, ci=(-0.3, -0.2)),
             Edge("a1.h1", "logits", 1.0, "eap", "resample", exact=0.9))
    path = CausalGraph(nodes, edges, GraphMeta(model="m", method="eap")).save(tmp_path / "graph.json")
    gd = parse_graph(json.loads(path.read_text()))
    assert [gd.nodes[i]["id"] for i in gd.tgt] == ["a0.h0", "a1.h1", "logits"]
    assert gd.in_circuit.tolist() == [True, False, True] and gd.metadata["model"] == "m"
    v = build_view(gd, ViewParams("top", 100))
    data = {e["data"]["id"]: e["data"] for e in v.elements if "source" in e["data"]}
    assert data["a0.h0->a1.h1<k>"]["target"] == "a1.h1" and data["a0.h0->a1.h1<k>"]["ci"] == "[-0.3, -0.2]"
    assert hover_lines(data["a1.h1->logits"])[:3] == ["edge a1.h1 → logits", "score 1", "exact 0.9"]
    assert neighbours(gd, "a1.h1")["incoming"] == [{"node": "a0.h0 (→k)", "score": -0.25, "ci": "[-0.3, -0.2]"}]
    assert "circuit edges" in build_view(gd, ViewParams("top", 100, circuit_only=True)).summary


def test_graph_page_states_ig_completeness(tmp_path):
    """EAP-IG graphs carry their completeness check; the graph page header states it and flags > 10 %."""
    from types import SimpleNamespace

    from apps.graph_io import ig_completeness_fact
    from interpbench.graphs.ir import CausalGraph, Edge, GraphMeta, component_node

    nodes = tuple(component_node(i, 1) for i in ("input", "a0.h0", "logits"))
    edges = (Edge("input", "a0.h0<q>", 0.5, "eap-ig", "resample"), Edge("a0.h0", "logits", 1.0, "eap-ig", "resample"))
    settings = SimpleNamespace(runs_dir=tmp_path, max_file_bytes=10 ** 8, cache=None)
    for rel, want in ((0.22, "IG completeness 22.0 % off (5 points) ⚠ more steps or --ig-refine"),
                      (0.025, "IG completeness 2.5 % off (25 points)"), (None, "IG completeness undefined")):
        comp = {"delta_metric": 3.0, "ig_sum": 2.3, "rel_error": rel, "points": 5 if rel == 0.22 else 25}
        run = tmp_path / f"run{rel}"
        run.mkdir()
        CausalGraph(nodes, edges, GraphMeta(model="m", method="eap-ig", params={"steps": 5, "completeness": comp})
                    ).save(run / "graph.json")
        assert ig_completeness_fact(settings, run.name).startswith(want)
    run = tmp_path / "eap"
    run.mkdir()
    CausalGraph(nodes, edges, GraphMeta(model="m", method="eap")).save(run / "graph.json")
    assert ig_completeness_fact(settings, "eap") == ""
