"""Runs page: every run under the runs directory; filter and open."""

from __future__ import annotations

from urllib.parse import quote

import dash
from dash import Input, callback, dcc, html

from apps.components.common import error_box, page_header
from apps.components.ids import RunsIds as ids
from apps.guard import guarded

dash.register_page(__name__, path="/", name="Runs", title="interpbench · runs")

COLUMNS = ("run", "recipe", "kind", "model", "task", "method", "metric", "date", "open")


def layout(**_query) -> html.Div:
    return html.Div([
        page_header("Runs", "every run under the runs directory, newest first"),
        dcc.Input(id=ids.filter, type="text", debounce=False, placeholder="filter (any column, e.g. ioi or patching)",
                  className="ib-filter", value=""),
        html.Div(id=ids.table),
    ])


def _open_links(r) -> list:
    q = quote(r.run_id)
    links = []
    if r.has_graph:
        links.append(dcc.Link("graph", href=f"/graph?run={q}", className="ib-open"))
    if r.has_scores:
        links.append(dcc.Link("patching", href=f"/patching?run={q}", className="ib-open"))
    if r.has_features:
        links.append(dcc.Link("features", href=f"/features?run={q}", className="ib-open"))
    if r.has_labels:
        links.append(dcc.Link("units", href=f"/units?run={q}", className="ib-open"))
    return links


def runs_table(rows: list) -> html.Table:
    head = html.Tr([html.Th(c) for c in COLUMNS])
    body = []
    for r in rows:
        cells = [r.run_id, r.recipe, r.kind, r.model, r.task, r.method, r.metric, r.created[:19].replace("T", " ")]
        if r.error:
            cells[1] = f"unreadable: {r.error}"
        body.append(html.Tr([html.Td(c) for c in cells] + [html.Td(_open_links(r))],
                            className="ib-run-row" + (" ib-run-bad" if r.error else "")))
    return html.Table([html.Thead(head), html.Tbody(body)], className="ib-table")


def filter_rows(rows: list, text: str) -> list:
    """Rows whose columns contain every whitespace-separated word of ``text`` (case-insensitive)."""
    words = (text or "").lower().split()
    out = []
    for r in rows:
        hay = " ".join([r.run_id, r.recipe, r.kind, r.model, r.task, r.method, r.metric, r.created]).lower()
        if all(w in hay for w in words):
            out.append(r)
    return out


@callback(dash.Output(ids.table, "children"), Input(ids.filter, "value"))
@guarded(error_box)
def show_runs(text):
    from apps.data import list_runs
    from apps.server import current_settings

    rows = list_runs(current_settings().runs_dir)
    shown = filter_rows(rows, text)
    if not rows:
        return html.Div("no runs yet: run a recipe (interpbench run recipes/<name>.yaml)", className="ib-note")
    return html.Div([html.Div(f"{len(shown)} of {len(rows)} runs", className="ib-count"), runs_table(shown)])
