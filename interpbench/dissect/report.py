"""On-disk payloads and figures of a dissection run (pure: results in, dicts / figures out).

``labels.json`` (schema_version 1)::

    {"schema_version": 1, "model": ..., "concepts": [...],
     "sites": {site: {"units": [UnitLabel.to_dict(), ...],
                      "top_examples": {unit: [[example id, max activation], ...]}}},
     "extra": {...}}

The app shows a unit's label by looking up ``sites[site]["units"][unit]["concept"]``
(and ``formula``); graph nodes of type ``neuron`` carry the same label in ``Node.label``.
"""

from __future__ import annotations

from typing import Optional

LABELS_FILE_VERSION = 1


def labels_payload(res: dict, model: str, concepts: list, extra: Optional[dict] = None) -> dict:
    sites = {}
    for s, r in res.items():
        vals, ids = r.topk.values.T.tolist(), r.topk.ids.T.tolist()  # [units k]
        labelled = [lab.unit for lab in r.labels if lab.concept]
        sites[s] = {"units": [lab.to_dict() for lab in r.labels],
                    "top_examples": {str(u): [[i, v] for i, v in zip(ids[u], vals[u])] for u in labelled}}
    return {"schema_version": LABELS_FILE_VERSION, "model": model, "concepts": list(concepts), "sites": sites,
            "extra": extra or {}}


def labels_figure(res: dict):
    """Bar chart: labelled units per concept, one trace per site."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for s, r in res.items():
        counts: dict = {}
        for lab in r.labels:
            if lab.concept:
                counts[lab.concept] = counts.get(lab.concept, 0) + 1
        fig.add_bar(name=s, x=list(counts), y=list(counts.values()))
    fig.update_layout(title="Units labelled per concept (IoU above threshold)", barmode="group",
                      xaxis_title="concept", yaxis_title="units")
    return fig


def curve_figure(curves: dict, title: str):
    """Effect vs number of units ablated: ``curves = {name: [(n, ace, lo, hi), ...]}``."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, pts in curves.items():
        fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=name, mode="lines+markers",
                        error_y={"type": "data", "symmetric": False, "array": [p[3] - p[1] for p in pts],
                                 "arrayminus": [p[1] - p[2] for p in pts]})
    fig.update_layout(title=title, xaxis_title="units ablated", yaxis_title="change of class logit")
    return fig


def stability_figure(stab: dict):
    import plotly.graph_objects as go

    rows = stab["per_perturbation"]
    fig = go.Figure()
    for m in ("path_intervention", "gradient"):
        fig.add_bar(name=m, x=list(rows), y=[rows[p][m] for p in rows])
    fig.update_layout(title=f"Stability of the top-{stab['top']} edges into {stab['layer']} (Jaccard vs clean)",
                      barmode="group", yaxis_title="Jaccard", yaxis_range=[0, 1])
    return fig
