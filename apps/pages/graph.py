"""Causal graph page: ``/graph?run=<id>[&compare=<id>]`` (dash-cytoscape, pruned server-side)."""

from __future__ import annotations

import json
from urllib.parse import quote

import dash
from dash import Input, Output, State, callback, ctx, dcc, html

from apps.components.common import error_box, page_header, run_facts
from apps.components.graph_panel import explorer
from apps.components.ids import GraphIds as ids
from apps.guard import guarded, report

dash.register_page(__name__, path="/graph", name="Graph", title="interpbench · graph")


def _error_page(message: str) -> html.Div:
    return html.Div([page_header("Causal graph"), error_box(message)])


@guarded(_error_page)
def layout(run=None, compare=None, **_query) -> html.Div:
    from apps.data import graph_path, list_runs, load_result
    from apps.server import current_settings

    s = current_settings()
    path = graph_path(s.runs_dir, run)
    if not path.is_file():
        return _error_page(f"run {run!r} has no graph file ({path.name}); open its patching page instead")
    try:
        facts = " · ".join(f"{k} {v}" for k, v in run_facts(load_result(s.runs_dir, run))[:5])
    except Exception as exc:  # noqa: BLE001 - a graph without a readable result.json is still shown
        facts = report(exc)
    try:
        from apps.graph_io import ig_completeness_fact

        facts = " · ".join(x for x in (facts, ig_completeness_fact(s, run)) if x)
    except Exception as exc:  # noqa: BLE001 - the graph itself is checked (and reported) by the explorer
        facts = " · ".join(x for x in (facts, report(exc)) if x)
    options = [{"label": r.run_id, "value": r.run_id} for r in list_runs(s.runs_dir)
               if r.has_graph and r.run_id != run]
    compare = compare if compare in {o["value"] for o in options} else None
    return html.Div([page_header(f"Causal graph · {run}", facts), explorer(run, options, compare, True)])


@callback(Output(ids.cyto, "elements"), Output(ids.summary, "children"), Output(ids.status, "children"),
          Input(ids.mode, "value"), Input(ids.slider, "value"), Input(ids.compare, "value"),
          Input(ids.options, "value"), Input(ids.pinned, "data"), State(ids.run, "data"))
def update_graph(mode, value, compare, options, pinned, run):
    """Prune (server-side) and send the kept elements."""
    from apps.graph_io import params_from, render
    from apps.server import current_settings

    try:
        view, _, _ = render(current_settings(), run, params_from(mode, value, options, pinned), compare)
    except Exception as exc:  # noqa: BLE001
        return [], "", error_box(report(exc))
    return view.elements, view.summary, None


@callback(Output(ids.faith, "figure"), Input(ids.run, "data"))
def faithfulness(run):
    from apps.figures import faithfulness_figure, message_figure
    from apps.graph_io import load_graph
    from apps.server import current_settings

    try:
        return faithfulness_figure(load_graph(current_settings(), run).faithfulness)
    except Exception as exc:  # noqa: BLE001
        return message_figure(report(exc))


@callback(Output(ids.hover, "children"), Input(ids.cyto, "mouseoverNodeData"),
          Input(ids.cyto, "mouseoverEdgeData"), prevent_initial_call=True)
def hover(node_data, edge_data):
    from apps.graph_view import hover_lines

    prop = ctx.triggered[0]["prop_id"] if ctx.triggered else ""
    lines = hover_lines(edge_data if prop.endswith("EdgeData") else node_data)
    return [html.Div(line) for line in lines] or "hover a node or an edge"


def node_panel(details: dict) -> list:
    """Children of the selected-node panel."""
    node = details["node"]
    kids = [html.Div(f"{node['id']} ({node['type']}, layer {node.get('layer')}"
                     + (f", position {node['pos']})" if node.get("pos") is not None else ")"), className="ib-node-id")]
    unit = details.get("unit")
    if details.get("concept") or unit:
        rows = [html.Tr([html.Th("label"), html.Td(details.get("concept") or "—", id="graph-node-label")])]
        if unit:
            rows += [html.Tr([html.Th("IoU"), html.Td(f"{unit['iou']:.3f}" if unit["iou"] is not None else "n/a")])]
            if unit["formula"]:
                rows.append(html.Tr([html.Th("formula"), html.Td(unit["formula"])]))
            rows.append(html.Tr([html.Th("site"), html.Td(dcc.Link(
                f"{unit['site']} c{unit['unit']} (top examples)", id="graph-node-units-link",
                href=f"/units?run={quote(details['run'])}&site={quote(unit['site'])}&unit={unit['unit']}"))]))
        kids.append(html.Table(rows, className="ib-kv"))
    if details["values"]:
        kids.append(html.Table([html.Tr([html.Th(k), html.Td(f"{v:.4g}")]) for k, v in details["values"]],
                               className="ib-kv"))
    for name, count in (("incoming", "n_in"), ("outgoing", "n_out")):
        rows = [html.Tr([html.Td(e["node"]), html.Td(f"{e['score']:+.4g}"), html.Td(e["ci"])]) for e in details[name]]
        kids.append(html.Div(f"{name} ({details[count]}, strongest first)", className="ib-subhead"))
        kids.append(html.Table([html.Tr([html.Th("node"), html.Th("score"), html.Th("CI")])] + rows,
                               className="ib-kv ib-neigh", id=f"graph-node-{name}"))
    return kids


@callback(Output(ids.node, "children"), Output(ids.selected, "data"), Input(ids.cyto, "tapNodeData"),
          State(ids.run, "data"), prevent_initial_call=True)
def tap(node_data, run):
    from apps.graph_io import node_details
    from apps.server import current_settings

    if not node_data or node_data.get("type") == "axis":
        return dash.no_update, dash.no_update
    try:
        return node_panel(node_details(current_settings(), run, node_data.get("id"))), node_data.get("id")
    except Exception as exc:  # noqa: BLE001
        return error_box(report(exc)), None


@callback(Output(ids.pinned, "data"), Input(ids.pin, "n_clicks"), Input(ids.clear, "n_clicks"),
          State(ids.selected, "data"), State(ids.pinned, "data"), prevent_initial_call=True)
def pins(_pin, _clear, selected, pinned):
    from apps.graph_io import pins_after

    return pins_after(ctx.triggered_id, selected, pinned)


@callback(Output(ids.download, "data"), Output(ids.status, "children", allow_duplicate=True),
          Input(ids.export_json, "n_clicks"), State(ids.mode, "value"), State(ids.slider, "value"),
          State(ids.compare, "value"), State(ids.options, "value"), State(ids.pinned, "data"),
          State(ids.run, "data"), prevent_initial_call=True)
def export_json(_n, mode, value, compare, options, pinned, run):
    from apps.graph_io import export_json as build, params_from
    from apps.server import current_settings

    try:
        doc = build(current_settings(), run, params_from(mode, value, options, pinned), compare)
    except Exception as exc:  # noqa: BLE001
        return dash.no_update, error_box(report(exc))
    return dict(content=json.dumps(doc, indent=1), filename=f"{run}-view.json", type="application/json"), None


@callback(Output(ids.cyto, "generateImage"), Input(ids.export_png, "n_clicks"), State(ids.run, "data"),
          prevent_initial_call=True)
def export_png(_n, run):
    return {"type": "png", "action": "download", "filename": f"{run}-graph", "options": {"full": False, "scale": 2}}
