"""Units page: ``/units?run=<id>[&site=<site>][&unit=<j>]`` — the unit labels of a
dissection run (``labels.json``): per site, a table of units with their concept, IoU and
compositional formula (filter by concept, sort by IoU / unit / concept), and the top
examples of one unit (text runs: the example's tokens, highlighted where per-token
activations are recorded; vision runs: image ids and max activations — images are not
stored in the run)."""

from __future__ import annotations

from urllib.parse import quote

import dash
from dash import Input, Output, State, callback, dcc, html

from apps.components.common import error_box, note, page_header, token_spans
from apps.components.ids import UnitsIds as ids
from apps.guard import guarded, report

dash.register_page(__name__, path="/units", name="Units", title="interpbench · units")

MAX_ROWS = 500
"""Largest number of table rows sent at once (filter to see others)."""
SORT_TEXT = {"iou": "IoU (highest first)", "unit": "unit index", "concept": "concept"}


def _error_page(message: str) -> html.Div:
    return html.Div([page_header("Units"), error_box(message)])


def _subtitle(labels: dict, result) -> str:
    parts = [f"model {labels.get('model', 'n/a')}", f"{len(labels['sites'])} site(s)",
             f"{len(labels.get('concepts') or [])} concepts"]
    if isinstance(result, dict):
        parts += [f"method {result.get('method', 'n/a')}", f"created {str(result.get('created', 'n/a'))[:19]}"]
    return " · ".join(parts)


@guarded(_error_page)
def layout(run=None, site=None, unit=None, **_query) -> html.Div:
    from apps.data import load_result
    from apps.server import current_settings
    from apps.units_data import SORTS, filter_units, load_labels, sort_units, unit_rows

    s = current_settings()
    labels = load_labels(s, run)
    try:
        result = load_result(s.runs_dir, run)
    except Exception:  # noqa: BLE001 - the labels are still shown
        result = None
    sites = list(labels["sites"])
    if not sites:
        return _error_page(f"run {run!r} has a labels file with no sites")
    site = site if site in sites else sites[0]
    try:
        unit = int(unit) if unit is not None else None
    except ValueError:
        unit = None
    rows = unit_rows(labels, site)
    shown = sort_units(filter_units(rows, "", True), "iou")
    unit = pick_unit(rows, shown, unit)
    links = [dcc.Link("runs", href="/", className="ib-open")]
    if isinstance(result, dict) and isinstance((result.get("files") or {}).get("graph"), str):
        links.append(dcc.Link("path graph", href=f"/graph?run={quote(run)}", className="ib-open", id="units-graph-link"))
    controls = html.Div([
        html.Label(["site ", dcc.Dropdown(id=ids.site, value=site, clearable=False, className="ib-units-site",
                                          options=[{"label": x, "value": x} for x in sites])]),
        dcc.Input(id=ids.filter, type="text", value="", debounce=False, className="ib-filter",
                  placeholder="filter by concept or formula (e.g. triangle, digits, AND)"),
        html.Label(["sort ", dcc.Dropdown(id=ids.sort, value="iou", clearable=False, className="ib-units-sort",
                                          options=[{"label": SORT_TEXT[k], "value": k} for k in SORTS])]),
        dcc.Checklist(id=ids.labelled, value=["labelled"], options=[{"label": "labelled units only",
                                                                      "value": "labelled"}]),
    ], className="ib-units-controls")
    return html.Div([page_header(f"Units · {run}", _subtitle(labels, result)), html.Div(links),
                     dcc.Store(id=ids.run, data=run), controls, html.Div(id=ids.table),
                     html.H4("top examples"),
                     html.Label(["unit ", dcc.Dropdown(id=ids.unit, value=unit, className="ib-units-unit",
                                                       options=unit_options(rows, shown, unit),
                                                       placeholder="pick a unit (or click one in the table)")]),
                     html.Div(id=ids.examples)])


def _fmt(x) -> str:
    return f"{x:.3f}" if isinstance(x, float) else "n/a"


def units_table(run: str, site: str, rows: list, total: int) -> html.Div:
    """The table of ``rows`` (already filtered and sorted); each unit links to its examples."""
    head = ["unit", "label", "IoU", "formula", "formula IoU", "best concept", "top examples"]
    body = []
    for r in rows[:MAX_ROWS]:
        href = f"/units?run={quote(run)}&site={quote(site)}&unit={r['unit']}"
        body.append(html.Tr([html.Td(dcc.Link(f"c{r['unit']}", href=href)),
                             html.Td(r["concept"] or "—", className="ib-unit-label"),
                             html.Td(_fmt(r["iou"]), className="ib-score"), html.Td(r["formula"] or ""),
                             html.Td(_fmt(r["formula_iou"])), html.Td(r["best"]),
                             html.Td(str(r["n_examples"]) if r["n_examples"] else "")],
                            className="ib-unit-row"))
    kids = [html.Div(f"{len(rows)} of {total} units of {site}", className="ib-count", id="units-count")]
    if len(rows) > MAX_ROWS:
        kids.append(note(f"showing the first {MAX_ROWS}; filter to narrow the list"))
    kids.append(html.Table([html.Thead(html.Tr([html.Th(h) for h in head])), html.Tbody(body)],
                           className="ib-table ib-units"))
    return html.Div(kids)


@callback(Output(ids.table, "children"), Output(ids.unit, "options"), Output(ids.unit, "value"),
          Input(ids.site, "value"), Input(ids.filter, "value"), Input(ids.sort, "value"),
          Input(ids.labelled, "value"), State(ids.unit, "value"), State(ids.run, "data"))
def show_units(site, text, order, labelled, unit, run):
    """Filter and sort one site's units; the unit menu lists the shown units."""
    from apps.server import current_settings
    from apps.units_data import filter_units, load_labels, sort_units, unit_rows

    try:
        labels = load_labels(current_settings(), run)
        rows = unit_rows(labels, site)
        shown = sort_units(filter_units(rows, text, "labelled" in (labelled or [])), order)
    except Exception as exc:  # noqa: BLE001
        return error_box(report(exc)), [], None
    unit = pick_unit(rows, shown, unit)
    return units_table(run, site, shown, len(rows)), unit_options(rows, shown, unit), unit


def pick_unit(rows: list, shown: list, unit):
    """``unit`` if the site has it, else the first shown unit with examples (else the first shown)."""
    if unit in {r["unit"] for r in rows}:
        return unit
    return next((r["unit"] for r in shown if r["n_examples"]), shown[0]["unit"] if shown else None)


def unit_options(rows: list, shown: list, unit) -> list:
    """Unit menu: the shown units, plus the chosen one when the filter hides it (a menu drops unknown values)."""
    keep = shown[:MAX_ROWS]
    if unit is not None and unit not in {r["unit"] for r in keep}:
        keep = keep + [r for r in rows if r["unit"] == unit]
    return [{"label": f"c{r['unit']} · {r['concept'] or 'unlabelled'}", "value": r["unit"]} for r in keep]


def examples_panel(labels: dict, site: str, unit: int) -> list:
    """Children of the examples panel of one unit."""
    from apps.units_data import unit_examples, unit_row

    row = unit_row(labels, site, unit)
    if row is None:
        return [error_box(f"unit {unit!r} is not in site {site!r}")]
    title = f"{site} · c{unit} · {row['concept'] or 'unlabelled'}"
    facts = f"IoU {_fmt(row['iou'])}" + (f" · formula {row['formula']} (IoU {_fmt(row['formula_iou'])})"
                                         if row["formula"] else "") + (f" · best concept {row['best']}" if row["best"] else "")
    kids = [html.Div(title, className="ib-node-id", id="units-selected"), html.Div(facts, className="ib-subtitle")]
    examples = unit_examples(labels, site, unit)
    if not examples:
        return kids + [note("no top examples recorded for this unit (the run keeps them for labelled units only)")]
    with_tokens = [ex for ex in examples if ex.get("tokens")]
    if not with_tokens:  # vision runs: ids only
        kids.append(note("images are not stored in the run: example ids (image index in the probe set) "
                         "and the unit's max activation on each"))
        kids.append(html.Table([html.Tr([html.Th("example"), html.Th("max activation")])]
                               + [html.Tr([html.Td(str(ex["id"])), html.Td(_fmt(ex["act"]))]) for ex in examples],
                               className="ib-kv", id="units-example-table"))
        return kids
    if not any("acts" in ex for ex in with_tokens):
        kids.append(note("per-token activations are not recorded in labels.json: each example shows its text "
                         "and the unit's max activation over it"))
    top = max([abs(a) for ex in with_tokens for a in ex.get("acts", []) if isinstance(a, (int, float))] + [1e-12])
    for ex in with_tokens:
        head = html.Div(f"example {ex['id']} · max activation {_fmt(ex['act'])}", className="ib-subhead")
        if "acts" in ex:
            kids += [head, token_spans(ex["tokens"], ex["acts"], top)]
        else:
            kids += [head, html.Div([html.Span(t, className="ib-tok") for t in ex["tokens"]], className="ib-example")]
    return kids


@callback(Output(ids.examples, "children"), Input(ids.unit, "value"), State(ids.site, "value"),
          State(ids.run, "data"))
def show_examples(unit, site, run):
    from apps.server import current_settings
    from apps.units_data import load_labels

    if unit is None:
        return note("pick a unit to see its top examples")
    try:
        return examples_panel(load_labels(current_settings(), run), site, int(unit))
    except Exception as exc:  # noqa: BLE001
        return error_box(report(exc))
