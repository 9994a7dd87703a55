"""The causal-graph explorer: controls, cytoscape canvas, side panels and the stylesheet."""

from __future__ import annotations

from typing import Optional

import dash_cytoscape as cyto
from dash import dcc, html

from .ids import GraphIds as ids

POS_COLOUR, NEG_COLOUR = "#2166ac", "#b2182b"
A_COLOUR, B_COLOUR, BOTH_COLOUR, GT_COLOUR = "#1b9e77", "#7570b3", "#666666", "#f2b701"

STYLESHEET = [
    {"selector": "node", "style": {"label": "data(label)", "font-size": 8, "width": 20, "height": 20,
                                   "text-valign": "center", "text-halign": "center", "color": "#111",
                                   "background-color": "#cfcfcf", "border-width": 1, "border-color": "#777"}},
    {"selector": "node.attention", "style": {"background-color": "#f6d38b", "shape": "ellipse"}},
    {"selector": "node.mlp", "style": {"background-color": "#a8d5a2", "shape": "round-rectangle", "width": 30}},
    {"selector": "node.neuron", "style": {"background-color": "#a9cbe6", "shape": "round-rectangle"}},
    {"selector": "node.feature", "style": {"background-color": "#d6b8e3", "shape": "round-rectangle"}},
    {"selector": "node.error", "style": {"background-color": "#eeeeee", "shape": "triangle"}},
    {"selector": "node.input", "style": {"background-color": "#b0b0b0", "shape": "rectangle", "width": 34}},
    {"selector": "node.logits", "style": {"background-color": "#7a7a7a", "shape": "rectangle", "width": 34,
                                          "color": "#fff"}},
    {"selector": "node.labelled", "style": {"text-valign": "bottom", "text-halign": "center", "text-margin-y": 2,
                                            "text-wrap": "wrap", "text-max-width": 80, "font-size": 7}},
    {"selector": "node.pinned", "style": {"border-width": 4, "border-color": "#111"}},
    {"selector": "node:selected", "style": {"border-width": 4, "border-color": "#ff7f0e"}},
    {"selector": "node.axis", "style": {"background-opacity": 0, "border-width": 0, "font-size": 12,
                                        "color": "#555", "events": "no", "text-wrap": "none", "width": 1,
                                        "height": 1}},
    {"selector": "edge", "style": {"width": "data(w)", "curve-style": "bezier", "opacity": 0.75,
                                   "target-arrow-shape": "triangle", "arrow-scale": 0.6}},
    {"selector": "edge.pos", "style": {"line-color": POS_COLOUR, "target-arrow-color": POS_COLOUR}},
    {"selector": "edge.neg", "style": {"line-color": NEG_COLOUR, "target-arrow-color": NEG_COLOUR}},
    {"selector": "edge.only-a", "style": {"line-color": A_COLOUR, "target-arrow-color": A_COLOUR}},
    {"selector": "edge.only-b", "style": {"line-color": B_COLOUR, "target-arrow-color": B_COLOUR,
                                          "line-style": "dashed"}},
    {"selector": "edge.both", "style": {"line-color": BOTH_COLOUR, "target-arrow-color": BOTH_COLOUR}},
    {"selector": "edge.gt", "style": {"underlay-color": GT_COLOUR, "underlay-opacity": 0.9,
                                      "underlay-padding": 5}},
    {"selector": "edge.gt-missing", "style": {"line-color": GT_COLOUR, "target-arrow-color": GT_COLOUR,
                                              "line-style": "dashed", "opacity": 0.9}},
    {"selector": "edge:selected", "style": {"opacity": 1.0, "line-color": "#ff7f0e"}},
]


def _swatch(colour: str, text: str, dashed: bool = False) -> html.Span:
    style = {"borderTop": f"3px {'dashed' if dashed else 'solid'} {colour}"}
    return html.Span([html.Span(className="ib-swatch", style=style), text], className="ib-legend-item")


def legend() -> html.Div:
    return html.Div([_swatch(POS_COLOUR, "positive"), _swatch(NEG_COLOUR, "negative"),
                     _swatch(A_COLOUR, "only in A"), _swatch(B_COLOUR, "only in B", dashed=True),
                     _swatch(BOTH_COLOUR, "in both"), _swatch(GT_COLOUR, "ground truth (dashed: pruned away)"),
                     html.Span("width ∝ |score|; rows: layers (embeddings bottom, logits top); "
                               "columns: token positions", className="ib-legend-note")], className="ib-legend")


def controls(compare_options: list[dict], compare: Optional[str], has_gt: bool) -> html.Div:
    return html.Div([
        html.Div([html.Label("prune"),
                  dcc.RadioItems(id=ids.mode, value="top", inline=True,
                                 options=[{"label": "top-n edges", "value": "top"},
                                          {"label": "|score| threshold", "value": "threshold"}])],
                 className="ib-control"),
        html.Div([dcc.Slider(id=ids.slider, min=0, max=100, step=1, value=40, updatemode="mouseup",
                             marks={0: "0", 25: "25", 50: "50", 75: "75", 100: "100"},
                             tooltip={"placement": "bottom", "always_visible": False})],
                 className="ib-control ib-slider"),
        html.Div([html.Label("compare with"),
                  dcc.Dropdown(id=ids.compare, options=compare_options, value=compare, clearable=True,
                               placeholder="another graph run (B)", style={"minWidth": "220px"})],
                 className="ib-control"),
        html.Div(dcc.Checklist(id=ids.options, inline=True,
                               value=["gt"] if has_gt else [],
                               options=[{"label": "ground-truth overlay", "value": "gt", "disabled": not has_gt},
                                        {"label": "circuit edges only", "value": "circuit_only"},
                                        {"label": "pinned subgraph only", "value": "pinned_only"}]),
                 className="ib-control"),
        html.Div([html.Button("pin selected node", id=ids.pin, n_clicks=0),
                  html.Button("clear pins", id=ids.clear, n_clicks=0),
                  html.Button("export JSON", id=ids.export_json, n_clicks=0),
                  html.Button("export PNG", id=ids.export_png, n_clicks=0),
                  dcc.Download(id=ids.download)], className="ib-control ib-buttons"),
    ], className="ib-controls")


def explorer(run_id: str, compare_options: list[dict], compare: Optional[str], has_gt: bool) -> html.Div:
    """The whole graph explorer for one run."""
    return html.Div([
        dcc.Store(id=ids.run, data=run_id), dcc.Store(id=ids.pinned, data=[]), dcc.Store(id=ids.selected),
        controls(compare_options, compare, has_gt),
        html.Div(id=ids.status),
        html.Div(id=ids.summary, className="ib-summary"),
        html.Div([
            html.Div([cyto.Cytoscape(id=ids.cyto, elements=[], stylesheet=STYLESHEET,
                                     layout={"name": "preset", "fit": True, "padding": 30},
                                     style={"width": "100%", "height": "700px"}, minZoom=0.02, maxZoom=4,
                                     boxSelectionEnabled=False, autoungrabify=True, responsive=True),
                      legend()], className="ib-graph-main"),
            html.Div([html.H4("hover"), html.Div("hover a node or an edge", id=ids.hover, className="ib-panel"),
                      html.H4("selected node"), html.Div("click a node", id=ids.node, className="ib-panel"),
                      dcc.Graph(id=ids.faith, config={"displaylogo": False}, style={"height": "300px"})],
                     className="ib-graph-side"),
        ], className="ib-graph-row"),
    ])
