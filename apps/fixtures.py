"""Small run directories in the on-disk formats, for the app's tests, benchmark and demos.

* :func:`write_run` writes ``result.json`` (+ ``graph.json``, ``features.jsonl``) atomically.
* :func:`tiny_graph` is a hand-checkable 2-layer head graph with ground truth and a
  faithfulness curve; :func:`synthetic_graph` a large random per-position graph
  (the benchmark's 5,000 nodes / 20,000 edges).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from interpbench.paths import atomic_dir


def result_record(run_id: str, kind: str = "circuit", recipe: str = "tiny_circuit", scores: Optional[dict] = None,
                  graph: bool = True, created: str = "2026-11-24T12:00:00") -> dict:
    """A schema_version 1 ``result.json`` record."""
    return {"schema_version": 1, "kind": kind, "recipe": recipe, "run_id": run_id, "created": created,
            "config": {}, "model": {"name": "tiny-llama", "arch": "llama", "n_layers": 2, "n_heads": 2},
            "task": {"task": "ioi", "n": 8, "seq_len": 6, "hash": "0" * 16, "dropped": 0, "meta": {}},
            "method": "eap" if graph else "activation_patching", "ablation": "patch",
            "metric": {"name": "logit_diff", "convention": {"clean": 1.0, "corrupted": 0.0}},
            "scores": scores or {}, "timings": {},
            "files": {"graph": "graph.json" if graph else None, "figures": [], "tensors": None}}


def write_run(runs_dir: Path, run_id: str, result: dict, graph: Optional[dict] = None,
              features: Optional[list] = None) -> Path:
    """Write a run directory; returns its path."""
    final = Path(runs_dir) / run_id
    with atomic_dir(final) as tmp:
        (tmp / "result.json").write_text(json.dumps(result))
        if graph is not None:
            (tmp / "graph.json").write_text(json.dumps(graph))
        if features is not None:
            (tmp / "features.jsonl").write_text("".join(json.dumps(f) + "\n" for f in features))
    return final


def tiny_graph() -> dict:
    """input → heads/MLPs of 2 layers → logits, with exact scores (see tests/test_app_graph.py)."""
    nodes = [{"id": "input", "type": "input", "layer": None, "pos": None}]
    for layer in range(2):
        nodes += [{"id": f"a{layer}.h{h}", "type": "attention", "layer": layer, "pos": None, "head": h}
                  for h in range(2)]
        nodes.append({"id": f"m{layer}", "type": "mlp", "layer": layer, "pos": None})
    nodes.append({"id": "logits", "type": "logits", "layer": None, "pos": None})
    scored = [("input", "a0.h0", 0.5), ("input", "a0.h1", -0.1), ("input", "m0", 0.05),
              ("a0.h0", "a1.h1", 0.8), ("a0.h1", "a1.h0", -0.3), ("m0", "a1.h1", 0.02),
              ("a1.h1", "logits", 1.2), ("a1.h0", "logits", -0.6), ("m1", "logits", 0.01), ("a0.h0", "m1", 0.2)]
    edges = [{"source": s, "target": t, "score": v, "method": "eap", "ablation": "patch", "ci": [v - 0.05, v + 0.05]}
             for s, t, v in scored]
    return {"schema_version": 1, "nodes": nodes, "edges": edges,
            "metadata": {"method": "eap", "metric": "logit_diff"},
            "faithfulness": {"sizes": [1, 2, 4, 8, 10], "values": [0.3, 0.6, 0.85, 0.97, 1.0], "cpr": 0.9,
                             "cmd": 0.05, "ablation": "patch"},
            "ground_truth": [["a0.h0", "a1.h1"], ["a1.h1", "logits"], ["m0", "a1.h1"]]}


def tiny_scores(tokens: Optional[list] = None) -> dict:
    """Patching score arrays of the tiny run (layer × pos with CIs, layer × head without)."""
    tokens = tokens or ["<s>", "When", " Mary", " and", " John", " went"]
    vals = [[round(0.1 * (layer + 1) * (p + 1), 3) for p in range(len(tokens))] for layer in range(2)]
    return {"resid_pre": {"values": vals, "axes": ["layer", "pos"], "labels": {"pos": tokens},
                          "ci_low": [[v - 0.01 for v in r] for r in vals], "ci_high": [[v + 0.01 for v in r] for r in vals]},
            "heads": {"values": [[0.25, -0.5], [0.75, 1.0]], "axes": ["layer", "head"], "labels": {},
                      "ci_low": None, "ci_high": None}}


def synthetic_graph(n_nodes: int = 5000, n_edges: int = 20000, n_layers: int = 12, n_heads: int = 12,
                    seed: int = 0) -> dict:
    """A random per-position graph with exactly ``n_nodes`` nodes and ``n_edges`` edges."""
    nodes, rows, cols = [], [], []
    p = 0
    while len(nodes) < n_nodes:
        block = [("input", f"input@{p}", None, -1, 0)]
        for layer in range(n_layers):
            block += [("attention", f"a{layer}.h{h}@{p}", layer, h, 2 * layer + 1) for h in range(n_heads)]
            block.append(("mlp", f"m{layer}@{p}", layer, -1, 2 * layer + 2))
        block.append(("logits", f"logits@{p}", None, -1, 2 * n_layers + 1))
        for kind, nid, layer, head, row in block[: n_nodes - len(nodes)]:
            node = {"id": nid, "type": kind, "layer": layer, "pos": p}
            if head >= 0:
                node["head"] = head
            nodes.append(node)
            rows.append(row)
            cols.append(p)
        p += 1
    rows_a, cols_a = np.array(rows), np.array(cols)
    rng = np.random.default_rng(seed)
    keys: set = set()
    src_all, tgt_all = [], []
    while len(keys) < n_edges:
        s = rng.integers(0, len(nodes), 4 * n_edges)
        t = rng.integers(0, len(nodes), 4 * n_edges)
        ok = (rows_a[s] < rows_a[t]) & (cols_a[s] <= cols_a[t]) & (cols_a[t] - cols_a[s] <= 3)
        for a, b in zip(s[ok].tolist(), t[ok].tolist()):
            if (a, b) not in keys:
                keys.add((a, b))
                src_all.append(a)
                tgt_all.append(b)
                if len(keys) == n_edges:
                    break
    scores = rng.standard_t(3, n_edges) * 0.05
    edges = [{"source": nodes[a]["id"], "target": nodes[b]["id"], "score": round(float(v), 6), "method": "eap",
              "ablation": "mean", "ci": None} for a, b, v in zip(src_all, tgt_all, scores)]
    return {"schema_version": 1, "nodes": nodes, "edges": edges,
            "metadata": {"method": "eap", "tokens": [f"tok{i}" for i in range(p)]},
            "faithfulness": None, "ground_truth": None}


def write_eap_run(runs_dir: Path, run_id: str, model, pairs, method: str = "eap", n_circuit: int = 40,
                  faithfulness: bool = True, ground_truth: Optional[list] = None) -> Path:
    """A real circuit run made by interpbench's own code: EAP edge scores of ``model`` on
    ``pairs`` (:mod:`interpbench.graphs.eap`), the top ``n_circuit`` edges marked as the
    circuit, and the MIB faithfulness block, written as ``graph.json`` + ``result.json``."""
    import dataclasses
    import datetime

    from interpbench.graphs.eap import edge_scores, to_graph
    from interpbench.graphs.prune import top_n

    es = edge_scores(model, pairs, method=method, ablation="resample")
    g = top_n(to_graph(es, model_name=model.cfg.name, pairs=pairs), n_circuit, prune=False)
    if faithfulness:
        from interpbench.graphs.faithfulness import mib_block

        g = g.with_faithfulness(mib_block(model, pairs, g, ablations=("resample",)))
    graph = g.to_dict()
    if ground_truth is not None:
        graph["ground_truth"] = ground_truth
    cfg = model.cfg
    result = {"schema_version": 1, "kind": "circuit", "recipe": f"{pairs.name}_circuit", "run_id": run_id,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "config": {"method": method, "n_circuit": n_circuit},
              "model": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {"name": str(cfg)},
              "task": pairs.describe(), "method": method, "ablation": "resample",
              "metric": {"name": "logit_diff", "convention": {"direction": "clean - corrupted, IO minus S"}},
              "scores": {}, "timings": {}, "files": {"graph": "graph.json", "figures": [], "tensors": None}}
    return write_run(runs_dir, run_id, result, graph)


def write_vision_dissection_run(runs_dir: Path, run_id: str = "dissect-vision-tiny", n_images: int = 40,
                                graph_images: int = 4, top: int = 4) -> tuple[Path, dict, dict]:
    """A small real dissection run of the bundled scene CNN (interpbench.dissect code, ~1 s on CPU).

    Writes ``result.json`` (kind ``dissection``), ``labels.json`` and the path-intervention
    ``graph.json`` like ``interpbench dissect --vision-demo`` (without its ablation curves and
    stability figures); returns (run dir, labels payload, graph JSON object).
    """
    import torch

    from interpbench.dissect.engine import DissectConfig, dissect
    from interpbench.dissect.report import labels_payload
    from interpbench.dissect.vision.data import scene_batches, vision_acts_fn
    from interpbench.dissect.vision.model import load_scene_cnn
    from interpbench.dissect.vision.paths import build_graph
    from interpbench.dissect.vision.scenes import CLASSES, CONCEPTS, make_scenes

    dev = torch.device("cpu")
    model, scenes = load_scene_cnn(device=dev), make_scenes(n_images, seed=7)
    sites = ["conv1.hook_post", "conv2.hook_post", "conv3.hook_post"]
    h, w = scenes.images.shape[-2:]
    dcfg = DissectConfig(quantile=0.99, iou_threshold=0.04, comp_units=2, tail=int(n_images * h * w * 0.01) + 64)
    res = dissect(vision_acts_fn(model, sites, (h, w)), scene_batches(scenes, n_images, dev), sites,
                  list(CONCEPTS), dcfg)
    labels = {f"conv{k + 1}.c{lab.unit}": lab.formula or lab.concept
              for k, s in enumerate(sites) for lab in res[s].labels if lab.concept}
    c = CLASSES.index("house")
    graph, _ = build_graph(model, scenes.images[scenes.labels == c][:graph_images], c, "house", top=top, labels=labels)
    payload = labels_payload(res, "scene-cnn", list(CONCEPTS), {"graph_labels": labels})
    graph_obj = json.loads(graph.to_json())
    result = {"schema_version": 1, "kind": "dissection", "recipe": "dissect-vision", "run_id": run_id,
              "created": "2026-11-24T12:30:00", "config": {"kind": "dissect_vision", "n_images": n_images},
              "method": "network_dissection+path_intervention", "model": "scene-cnn", "metric": "logit[house]",
              "ablation": "zero", "task": "synthetic-scenes", "scores": {"n_images": n_images}, "timings": {},
              "files": {"figures": [], "tensors": None, "labels": "labels.json", "graph": "graph.json"}}
    final = Path(runs_dir) / run_id
    with atomic_dir(final) as tmp:
        (tmp / "result.json").write_text(json.dumps(result))
        (tmp / "labels.json").write_text(json.dumps(payload))
        (tmp / "graph.json").write_text(json.dumps(graph_obj))
    return final, payload, graph_obj


TEXT_LABELS = {
    "schema_version": 1, "model": "tiny-llama", "concepts": ["digits", "hyphen", "month"],
    "sites": {"blocks.0.mlp.hook_post": {
        "units": [{"site": "blocks.0.mlp.hook_post", "unit": 0, "concept": "digits", "iou": 0.41, "best": "digits",
                   "threshold": 0.5, "formula": "(digits AND NOT month)", "formula_iou": 0.47},
                  {"site": "blocks.0.mlp.hook_post", "unit": 1, "concept": "", "iou": 0.01, "best": "hyphen",
                   "threshold": 0.2, "formula": "", "formula_iou": None},
                  {"site": "blocks.0.mlp.hook_post", "unit": 2, "concept": "hyphen", "iou": 0.22, "best": "hyphen",
                   "threshold": 0.3, "formula": "", "formula_iou": None}],
        "top_examples": {"0": [[1, 2.5], [0, 1.25]],
                         "2": [{"id": 0, "act": 0.9, "tokens": ["self", "-", "made"], "acts": [0.0, 0.9, 0.1]}]}}},
    "extra": {"tokens": [["In", " May", " 2", "0", "1", "0"], ["Page", " 1", "2", " of", " 3"]]}}
"""A hand-checkable text dissection ``labels.json`` (the format of ``interpbench.dissect.report``)."""


def write_text_dissection_run(runs_dir: Path, run_id: str = "dissect-text-tiny") -> Path:
    """A text dissection run directory holding :data:`TEXT_LABELS` (no graph)."""
    result = {"schema_version": 1, "kind": "dissection", "recipe": "dissect-text", "run_id": run_id,
              "created": "2026-11-24T12:20:00", "config": {"kind": "dissect_text"}, "method": "network_dissection",
              "model": "tiny-llama", "metric": "iou", "ablation": "zero", "task": "concepts:builtin",
              "scores": {}, "timings": {}, "files": {"figures": [], "tensors": None, "labels": "labels.json"}}
    final = Path(runs_dir) / run_id
    with atomic_dir(final) as tmp:
        (tmp / "result.json").write_text(json.dumps(result))
        (tmp / "labels.json").write_text(json.dumps(TEXT_LABELS))
    return final
