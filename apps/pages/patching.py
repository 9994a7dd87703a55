"""Patching page: ``/patching?run=<id>`` — one heatmap per score array of the run."""

from __future__ import annotations

import dash
from dash import dcc, html

from apps.components.common import error_box, kv_table, page_header, run_facts
from apps.components.ids import PatchingIds as ids
from apps.guard import guarded, report

dash.register_page(__name__, path="/patching", name="Patching", title="interpbench · patching")


def _error_page(message: str) -> html.Div:
    return html.Div([page_header("Patching"), error_box(message)])


@guarded(_error_page)
def layout(run=None, **_query) -> html.Div:
    from apps.data import load_result
    from apps.figures import patching_heatmap
    from apps.server import current_settings

    result = load_result(current_settings().runs_dir, run)
    scores = result.get("scores")
    if not isinstance(scores, dict) or not scores:
        return _error_page(f"run {run!r} has no score arrays to draw")
    graphs = []
    for name, sc in scores.items():
        try:
            graphs.append(dcc.Graph(figure=patching_heatmap(str(name), sc, result), id=f"patching-{name}",
                                    config={"displaylogo": False}, className="ib-heatmap"))
        except Exception as exc:  # noqa: BLE001 - one bad array must not hide the others
            graphs.append(error_box(f"score {name!r}: {report(exc)}"))
    return html.Div([page_header(f"Patching · {run}", f"{result.get('kind', '')} · {result.get('recipe', '')}"),
                     kv_table(run_facts(result)), html.Div(graphs, id=ids.heatmaps)])
