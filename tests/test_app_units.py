"""Unit labels of dissection runs in the app: the Units page and labelled graph nodes.

Callbacks are called as plain functions inside a request context, on a small real
dissection run of the bundled scene CNN (``interpbench.dissect`` code, 40 images) and on a
hand-written text ``labels.json``; expected values come from the dissection payload itself.
"""

from __future__ import annotations

import sys

import pytest

from apps.data import AppDataError, list_runs
from apps.fixtures import TEXT_LABELS, result_record, tiny_graph, write_run, write_text_dissection_run, \
    write_vision_dissection_run
from apps.graph_data import LayoutRef, compute_layout
from apps.graph_view import hover_lines, node_caption
from apps.server import create_app
from apps.units_data import filter_units, sort_units, unit_examples, unit_of_node, unit_rows


def _text(component) -> str:
    if component is None:
        return ""
    if isinstance(component, (str, int, float)):
        return str(component)
    if isinstance(component, (list, tuple)):
        return " ".join(_text(c) for c in component)
    return _text(getattr(component, "children", None))


def _find(component, cid):
    if isinstance(component, (list, tuple)):
        for c in component:
            hit = _find(c, cid)
            if hit is not None:
                return hit
        return None
    if getattr(component, "id", None) == cid:
        return component
    kids = getattr(component, "children", None)
    return _find(kids, cid) if kids is not None and not isinstance(kids, str) else None


@pytest.fixture(scope="module")
def vision(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run_dir, payload, graph = write_vision_dissection_run(runs, "vis")
    write_text_dissection_run(runs, "txt")
    write_run(runs, "tiny", result_record("tiny"), tiny_graph())
    return runs, payload, graph


@pytest.fixture(scope="module")
def app(vision):
    app = create_app(vision[0])
    app.server.test_client().get("/")
    return app


@pytest.fixture(scope="module")
def pages(app):
    return {name: sys.modules[f"apps.pages.{name}"] for name in ("runs", "graph", "units")}


def test_fixture_run_is_a_real_labelled_dissection(vision):
    _, payload, graph = vision
    assert set(payload["sites"]) == {"conv1.hook_post", "conv2.hook_post", "conv3.hook_post"}
    labelled = [n for n in graph["nodes"] if n["type"] == "neuron" and n.get("label")]
    assert labelled and any(n["type"] == "logits" and n["id"] == "logits.house" for n in graph["nodes"])
    for n in labelled:  # the graph's label is the unit's formula or concept in labels.json
        site = {0: "conv1.hook_post", 1: "conv2.hook_post", 2: "conv3.hook_post"}[n["layer"]]
        u = payload["sites"][site]["units"][n["index"]]
        assert n["label"] == (u["formula"] or u["concept"])


def test_units_rows_filter_sort():
    rows = unit_rows(TEXT_LABELS, "blocks.0.mlp.hook_post")
    assert [r["unit"] for r in sort_units(rows, "iou")] == [0, 2, 1]
    assert [r["unit"] for r in sort_units(rows, "concept")] == [0, 2, 1]  # digits, hyphen, unlabelled last
    assert [r["unit"] for r in sort_units(rows, "unit")] == [0, 1, 2]
    assert [r["unit"] for r in filter_units(rows, "HYPHEN")] == [1, 2]  # best concept matches too
    assert [r["unit"] for r in filter_units(rows, "hyphen", labelled_only=True)] == [2]
    assert [r["unit"] for r in filter_units(rows, "not month")] == [0]
    assert rows[0]["n_examples"] == 2 and rows[1]["n_examples"] == 0
    ex = unit_examples(TEXT_LABELS, "blocks.0.mlp.hook_post", 0)
    assert ex == [{"id": 1, "act": 2.5, "tokens": ["Page", " 1", "2", " of", " 3"]},
                  {"id": 0, "act": 1.25, "tokens": ["In", " May", " 2", "0", "1", "0"]}]
    with pytest.raises(AppDataError, match="not in this run's labels"):
        unit_rows(TEXT_LABELS, "blocks.9.mlp.hook_post")


def test_unit_of_node_and_captions(vision):
    _, payload, _ = vision
    assert unit_of_node(payload, "conv2.c17") == ("conv2.hook_post", 17)
    assert unit_of_node(payload, "logits.house") is None and unit_of_node(payload, "a0.h1") is None
    assert node_caption({"id": "conv2.c26", "label": "triangle"}) == "conv2.c26 · triangle"
    assert node_caption({"id": "logits.house", "label": "house"}) == "logits.house"
    assert node_caption({"id": "m0"}) == "m0"
    assert node_caption({"id": "c", "label": "x" * 40}) == "c · " + "x" * 27 + "…"
    assert hover_lines({"id": "conv2.c26", "type": "neuron", "layer": 1, "concept": "triangle"})[:2] == \
        ["node conv2.c26 (neuron)", "label triangle"]


def test_dissection_layout_rows(vision):
    _, _, graph = vision
    layout = compute_layout(graph["nodes"], LayoutRef.of(graph["nodes"]))
    ys = {n["id"]: layout.pos[n["id"]][1] for n in graph["nodes"]}
    by_layer = {}
    for n in graph["nodes"]:
        by_layer.setdefault(n["type"] if n["type"] == "logits" else n["layer"], set()).add(ys[n["id"]])
    assert all(len(v) == 1 for v in by_layer.values())  # one row per layer
    order = [by_layer[k].pop() for k in ("logits", 2, 1, 0) if k in by_layer]
    assert order == sorted(order) and order[0] == 0.0  # logits on top, conv1 at the bottom
    labels = [lab for lab, _ in sorted(layout.rows, key=lambda r: r[1])]  # top of the screen first
    assert labels[0] == "logits" and [lab for lab in labels if lab.startswith("conv")] == \
        [f"conv{k + 1}" for k in (2, 1, 0) if k in by_layer]


def test_runs_page_links_dissection_runs(app, pages):
    with app.server.test_request_context():
        rows = {r.run_id: r for r in list_runs(app.server.config["INTERPBENCH_APP"].runs_dir)}
        assert rows["vis"].has_labels and rows["txt"].has_labels and not rows["tiny"].has_labels
        assert rows["vis"].model == "scene-cnn" and rows["vis"].kind == "dissection"
        table = pages["runs"].show_runs("dissection")
        hrefs = [getattr(c, "href", "") for c in _walk(table)]
        assert "/units?run=vis" in hrefs and "/units?run=txt" in hrefs and "/graph?run=vis" in hrefs
        assert not any(h.startswith("/units?run=tiny") for h in hrefs)


def _walk(c):
    if isinstance(c, (list, tuple)):
        for x in c:
            yield from _walk(x)
        return
    if c is None or isinstance(c, (str, int, float)):
        return
    yield c
    yield from _walk(getattr(c, "children", None))


def test_units_page_vision(app, pages, vision):
    _, payload, _ = vision
    u = pages["units"]
    site = "conv2.hook_post"
    units = payload["sites"][site]["units"]
    best = max((x for x in units if x["concept"]), key=lambda x: (x["iou"], -x["unit"]))
    with app.server.test_request_context():
        lay = u.layout(run="vis")
        assert "Units · vis" in _text(lay) and _find(lay, "units-graph-link") is not None
        table, options, unit = u.show_units(site, "", "iou", ["labelled"], None, "vis")
        txt = _text(table)
        n_lab = sum(bool(x["concept"]) for x in units)
        assert f"{n_lab} of {len(units)} units of {site}" in txt
        assert unit == best["unit"] and options[0]["label"] == f"c{best['unit']} · {best['concept']}"
        assert txt.index(f"c{best['unit']}") < txt.index("units of") + 200
        concept = best["concept"]
        table, options, _ = u.show_units(site, concept, "unit", [], unit, "vis")
        want = [x["unit"] for x in units if concept in f"{x['concept']} {x['best']} {x['formula']}".lower()]
        assert [o["value"] for o in options] == sorted(want)
        panel = _text(u.show_examples(best["unit"], site, "vis"))
        assert f"{site} · c{best['unit']} · {concept}" in panel and "images are not stored" in panel
        first = payload["sites"][site]["top_examples"][str(best["unit"])][0]
        assert f"{first[1]:.3f}" in panel
        assert "not in site" in _text(u.show_examples(999, site, "vis"))
        assert "no run named" in _text(u.layout(run="nope"))
        assert "has no labels.json" in _text(u.layout(run="tiny"))


def test_units_page_text_examples(app, pages):
    u = pages["units"]
    site = "blocks.0.mlp.hook_post"
    with app.server.test_request_context():
        table, options, unit = u.show_units(site, "", "iou", ["labelled"], None, "txt")
        assert [o["value"] for o in options] == [0, 2] and unit == 0
        panel = u.show_examples(0, site, "txt")
        txt = _text(panel)
        assert "(digits AND NOT month)" in txt and "example 1 · max activation 2.500" in txt
        assert "Page  1 2  of  3" in txt and "per-token activations are not recorded" in txt
        panel = u.show_examples(2, site, "txt")
        spans = [c for c in _walk(panel) if getattr(c, "className", "") == "ib-tok"]
        assert [s.children for s in spans] == ["self", "-", "made"]
        assert spans[1].style["backgroundColor"] == "rgba(230, 132, 42, 1.00)"  # the max-activation token
        assert "per-token activations are not recorded" not in _text(panel)


def test_graph_page_shows_unit_labels(app, pages, vision):
    _, payload, graph = vision
    g = pages["graph"]
    with app.server.test_request_context():
        elements, summary, status = g.update_graph("top", 100, None, [], [], "vis")
        assert status is None and summary.startswith(f"showing {len(graph['edges'])} of {len(graph['edges'])} edges")
        nodes = {e["data"]["id"]: e for e in elements if "source" not in e["data"] and e["data"]["type"] != "axis"}
        labelled = [n for n in graph["nodes"] if n.get("label") and n["id"] in nodes and n["type"] == "neuron"]
        assert labelled
        for n in labelled:
            assert nodes[n["id"]]["data"]["concept"] == n["label"]
            assert nodes[n["id"]]["data"]["label"] == node_caption(n) and "labelled" in nodes[n["id"]]["classes"]
        axis = {e["data"]["label"] for e in elements if e["data"].get("type") == "axis"}
        assert "logits" in axis and "conv3" in axis and not any(a.startswith("L") for a in axis)
        n = labelled[0]
        panel, sel = g.tap({"id": n["id"], "type": "neuron"}, "vis")
        site, j = unit_of_node(payload, n["id"])
        u = payload["sites"][site]["units"][j]
        txt = _text(panel)
        assert sel == n["id"] and n["label"] in txt and f"{u['iou']:.3f}" in txt
        link = _find(panel, "graph-node-units-link")
        assert link.href == f"/units?run=vis&site={site}&unit={j}"
        panel, _ = g.tap({"id": "a0.h0", "type": "attention"}, "tiny")  # non-dissection graphs: no label rows
        assert _find(panel, "graph-node-label") is None
