"""Benchmark: the graph page's prune callback on a 5,000-node / 20,000-edge graph.

Builds a synthetic per-position graph (``apps.fixtures.synthetic_graph``), writes it as a
run, and times the real Dash callback through the app's HTTP endpoint
(``POST /_dash-update-component``, Flask test client: read + validate the file, prune,
lay out, serialise) at several slider settings, warm (the app's graph cache holds the
parsed file, as it does from the second interaction on) and cold (first load of the page). Prints the server time (median of 5) and
the payload sent to the browser, against the peer "send the whole graph and prune in the
browser" (its payload: every node and edge as cytoscape elements).

    python bench/app_graph.py [--nodes 5000] [--edges 20000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.fixtures import result_record, synthetic_graph, write_run  # noqa: E402
from apps.graph_data import parse_graph  # noqa: E402
from apps.graph_view import ViewParams, build_view  # noqa: E402
from apps.server import create_app  # noqa: E402


def _request(mode: str, value: float, run: str) -> dict:
    ins = [("graph-mode", "value", mode), ("graph-slider", "value", value), ("graph-compare", "value", None),
           ("graph-options", "value", []), ("graph-pinned", "data", [])]
    return {"output": "..graph-cyto.elements...graph-summary.children...graph-status.children..",
            "outputs": [{"id": "graph-cyto", "property": "elements"}, {"id": "graph-summary", "property": "children"},
                        {"id": "graph-status", "property": "children"}],
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in ins],
            "changedPropIds": ["graph-slider.value"],
            "state": [{"id": "graph-run", "property": "data", "value": run}]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--edges", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    t0 = time.perf_counter()
    g = synthetic_graph(args.nodes, args.edges)
    runs = Path(tempfile.mkdtemp(prefix="ib-bench-runs-"))
    path = write_run(runs, "big", result_record("big"), g) / "graph.json"
    print(f"graph: {len(g['nodes']):,} nodes, {len(g['edges']):,} edges, {path.stat().st_size / 1e6:.2f} MB on disk "
          f"(built in {time.perf_counter() - t0:.1f} s)")

    app = create_app(runs)
    client = app.server.test_client()
    assert client.get("/").status_code == 200  # sets up the callbacks
    print(f"{'setting':<28}{'server ms (median)':>20}{'min ms':>10}{'edges sent':>12}{'payload KB':>12}")
    for mode, value in (("top", 0), ("top", 40), ("top", 60), ("top", 80), ("threshold", 30), ("top", 100)):
        body = _request(mode, value, "big")
        times, resp = [], None
        for _ in range(args.repeats):
            t = time.perf_counter()
            resp = client.post("/_dash-update-component", json=body)
            times.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, resp.data[:300]
        out = resp.get_json()["response"]
        summary = out["graph-summary"]["children"]
        n_sent = int(summary.split()[1])
        print(f"{mode + ' ' + str(value):<28}{statistics.median(times):>20.1f}{min(times):>10.1f}{n_sent:>12,}"
              f"{len(resp.data) / 1024:>12.1f}")
    cold = []
    for _ in range(args.repeats):
        fresh = create_app(runs).server.test_client()
        fresh.get("/")
        t = time.perf_counter()
        r = fresh.post("/_dash-update-component", json=_request("top", 40, "big"))
        cold.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200
    print(f"{'top 40, cold (read+validate)':<28}{statistics.median(cold):>20.1f}{min(cold):>10.1f}")
    # peer: ship everything and prune in the browser (no cap): the elements of the whole graph
    full = build_view(parse_graph(g), ViewParams(mode="top", value=100.0), cap=10**9)
    full_kb = len(json.dumps(full.elements)) / 1024
    default_kb = len(client.post("/_dash-update-component", json=_request("top", 40, "big")).data) / 1024
    print(f"peer (whole graph to the browser): {full_kb:,.0f} KB of elements; "
          f"default view (slider 40) sends {default_kb:,.1f} KB = {default_kb / full_kb:.3%} of it "
          f"({full_kb / default_kb:,.0f}x less)")


if __name__ == "__main__":
    main()
