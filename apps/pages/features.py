"""Feature page: ``/features?run=<id>[&feature=<n>]`` — an SAE feature's label, scores,
activation histogram and top activating examples with per-token highlighting."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html

from apps.components.common import error_box, note, page_header, token_spans
from apps.components.ids import FeatureIds as ids
from apps.guard import guarded, report

dash.register_page(__name__, path="/features", name="Features", title="interpbench · features")

MAX_OPTIONS = 5000


def _error_page(message: str) -> html.Div:
    return html.Div([page_header("Features"), error_box(message)])


@guarded(_error_page)
def layout(run=None, feature=None, **_query) -> html.Div:
    from apps.data import load_features
    from apps.server import current_settings

    s = current_settings()
    records, problems = load_features(s.runs_dir, run, s.max_file_bytes)
    if not records:
        return _error_page(f"run {run!r} has no readable feature records" + (f" ({problems[0]})" if problems else ""))
    feats = sorted({r["feature"] for r in records})
    try:
        chosen = int(feature) if feature is not None else feats[0]
    except ValueError:
        chosen = feats[0]
    chosen = chosen if chosen in feats else feats[0]
    kids = [page_header(f"Features · {run}", f"{len(feats)} labelled features"), dcc.Store(id=ids.run, data=run),
            dcc.Dropdown(id=ids.select, value=chosen, clearable=False, className="ib-feature-select",
                         options=[{"label": f"feature {f}", "value": f} for f in feats[:MAX_OPTIONS]])]
    if len(feats) > MAX_OPTIONS:
        kids.append(note(f"the menu lists the first {MAX_OPTIONS} features; open others with ?feature=N"))
    if problems:
        kids.append(note(f"{len(problems)} malformed record(s) skipped, e.g. {problems[0]}"))
    kids.append(html.Div(id=ids.panel))
    return html.Div(kids)


def feature_panel(rec: dict) -> list:
    """Children of the feature panel for one feature record."""
    from apps.figures import histogram_figure

    kids = [html.H3(f"feature {rec['feature']}"),
            html.Div(str(rec.get("explanation") or "(no explanation)"), className="ib-explanation"),
            html.Div(f"explainer: {rec.get('explainer', 'n/a')}", className="ib-subtitle")]
    scores = rec.get("scores") if isinstance(rec.get("scores"), dict) else {}
    rows = []
    for name, sc in scores.items():
        sc = sc if isinstance(sc, dict) else {"score": sc}
        fmt = lambda x: f"{x:.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"  # noqa: E731
        rows.append(html.Tr([html.Td(str(name)), html.Td(fmt(sc.get("score"))), html.Td(fmt(sc.get("random_control")))]))
    kids.append(html.Table([html.Tr([html.Th("scorer"), html.Th("score"), html.Th("random control")])] + rows,
                           className="ib-kv", id="feature-scores"))
    kids.append(dcc.Graph(figure=histogram_figure(rec.get("histogram")), config={"displaylogo": False},
                          id="feature-histogram"))
    examples = rec.get("examples") if isinstance(rec.get("examples"), list) else []
    good = [ex for ex in examples if isinstance(ex, dict) and isinstance(ex.get("tokens"), list)
            and isinstance(ex.get("acts"), list)]
    top = max([abs(a) for ex in good for a in ex["acts"] if isinstance(a, (int, float))] + [1e-12])
    kids.append(html.H4(f"top activating examples ({len(good)})"))
    kids.extend(token_spans(ex["tokens"], ex["acts"], top) for ex in good)
    if len(good) < len(examples):
        kids.append(note(f"{len(examples) - len(good)} malformed example(s) skipped"))
    return kids


@callback(Output(ids.panel, "children"), Input(ids.select, "value"), State(ids.run, "data"))
def show_feature(feature, run):
    from apps.data import load_features
    from apps.server import current_settings

    try:
        s = current_settings()
        records, _ = load_features(s.runs_dir, run, s.max_file_bytes)
        rec = next((r for r in records if r["feature"] == feature), None)
        return feature_panel(rec) if rec else error_box(f"feature {feature!r} is not in run {run!r}")
    except Exception as exc:  # noqa: BLE001
        return error_box(report(exc))
