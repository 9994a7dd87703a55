"""Feature page: ``/features?run=<id>[&feature=<n>]`` — an SAE feature's label, status,
explainer (LLM or baseline), every scorer's score beside its random-explanation and
shuffled-latent controls, and (where the records carry them) an activation histogram and
top activating examples with per-token highlighting.

Records are the lines of ``features.jsonl`` written by the ``label`` recipe kind
(:func:`interpbench.explain.export.feature_records`); the older app fixture format
(``random_control``, ``histogram``, ``examples``) is read too."""

from __future__ import annotations

import dash
from dash import Input, Output, State, callback, dcc, html

from apps.components.common import error_box, note, page_header, token_spans
from apps.components.ids import FeatureIds as ids
from apps.guard import guarded, report

dash.register_page(__name__, path="/features", name="Features", title="interpbench · features")

MAX_OPTIONS = 5000


def _option_label(feature: int, status) -> str:
    return f"feature {feature}" + (f" ({status})" if status and status != "done" else "")


def _counts_text(n: int, status: dict) -> str:
    if not status:
        return f"{n} labelled features"
    counts: dict = {}
    for st in status.values():
        counts[st] = counts.get(st, 0) + 1
    return f"{n} features: " + ", ".join(f"{c} {st}" for st, c in sorted(counts.items()))


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
    status = {r["feature"]: r.get("status") for r in records if isinstance(r.get("status"), str)}
    try:
        chosen = int(feature) if feature is not None else feats[0]
    except ValueError:
        chosen = feats[0]
    chosen = chosen if chosen in feats else feats[0]
    kids = [page_header(f"Features · {run}", _counts_text(len(feats), status)), dcc.Store(id=ids.run, data=run),
            dcc.Dropdown(id=ids.select, value=chosen, clearable=False, className="ib-feature-select",
                         options=[{"label": _option_label(f, status.get(f)), "value": f} for f in feats[:MAX_OPTIONS]])]
    if len(feats) > MAX_OPTIONS:
        kids.append(note(f"the menu lists the first {MAX_OPTIONS} features; open others with ?feature=N"))
    if problems:
        kids.append(note(f"{len(problems)} malformed record(s) skipped, e.g. {problems[0]}"))
    kids.append(html.Div(id=ids.panel))
    return html.Div(kids)


STATUS_TEXT = {"done": "labelled", "dead": "dead latent", "skipped": "skipped", "failed": "failed",
               "pending": "not processed yet"}
KIND_TEXT = {"llm": "LLM explainer", "baseline": "baseline explainer (no LLM)"}


def _fmt(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "n/a"


def _explainer_line(rec: dict) -> html.Div:
    """``explainer: NAME`` plus its kind (LLM vs baseline); older records carry no kind."""
    name = rec.get("explainer")
    kind = rec.get("explainer_kind")
    if kind is None and isinstance(name, str) and name.startswith("baseline"):
        kind = "baseline"
    kids = [f"explainer: {name if name else 'n/a'}"]
    if kind:
        kids += [" ", html.Span(KIND_TEXT.get(kind, str(kind)), className=f"ib-badge ib-kind-{kind}",
                                id="feature-explainer-kind")]
    return html.Div(kids, className="ib-subtitle", id="feature-explainer")


def _status_line(rec: dict) -> list:
    status = rec.get("status")
    if not isinstance(status, str):
        return []  # the older fixture format has no status
    reason = rec.get("error") if status == "failed" else rec.get("dead")
    text = STATUS_TEXT.get(status, status)
    if reason:
        text += f": {reason}"
    if isinstance(rec.get("attempts"), int) and rec["attempts"] > 0:
        text += f" (retried {rec['attempts']}x)"
    return [html.Div([html.Span(status, className=f"ib-badge ib-status-{status}"), " ", text],
                     className="ib-status", id="feature-status")]


def _scores_table(rec: dict) -> html.Table:
    """One row per scorer: its score next to the random-explanation and shuffled-latent controls."""
    scores = rec.get("scores") if isinstance(rec.get("scores"), dict) else {}
    head = ["scorer", "score", "random explanation", "shuffled latent", "beats controls", "scorer model",
            "examples (pos/neg)", "parse failures", "random explanation used"]
    rows = []
    for name, sc in sorted(scores.items()):
        sc = sc if isinstance(sc, dict) else {"score": sc}
        score = sc.get("score")
        rnd = sc.get("random_explanation", sc.get("random_control"))  # random_control: the old fixture format
        shuf = sc.get("shuffled_latent")
        ctrls = [c for c in (rnd, shuf) if isinstance(c, (int, float)) and not isinstance(c, bool)]
        beats = ("n/a" if not isinstance(score, (int, float)) or not ctrls
                 else "yes" if all(score > c for c in ctrls) else "no")
        n = (f"{sc['n_pos']}/{sc['n_neg']}" if isinstance(sc.get("n_pos"), int) and isinstance(sc.get("n_neg"), int)
             else "n/a")
        pf = sc.get("parse_failures")
        rows.append(html.Tr([html.Td(str(name)), html.Td(_fmt(score), className="ib-score"),
                             html.Td(_fmt(rnd)), html.Td(_fmt(shuf)), html.Td(beats),
                             html.Td(str(sc.get("model") or "n/a")), html.Td(n),
                             html.Td(str(pf) if isinstance(pf, int) else "n/a"),
                             html.Td(str(sc.get("random_explanation_text") or ""))]))
    if not rows:
        rows = [html.Tr([html.Td("no scores recorded for this feature", colSpan=len(head))])]
    return html.Table([html.Tr([html.Th(h) for h in head])] + rows, className="ib-kv", id="feature-scores")


def feature_panel(rec: dict) -> list:
    """Children of the feature panel for one feature record.

    Reads the labelling export (:func:`interpbench.explain.export.feature_records`: status,
    explanation, explainer + kind, per-scorer score and controls) and the older app format
    (``random_control``, ``histogram``, ``examples``); histograms and examples are shown
    only when the record carries them, otherwise the page says they are not recorded.
    """
    from apps.figures import histogram_figure

    kids = [html.H3(f"feature {rec['feature']}")] + _status_line(rec)
    kids += [html.Div(str(rec.get("explanation") or "(no explanation)"), className="ib-explanation"),
             _explainer_line(rec), html.H4("scores and controls"), _scores_table(rec)]
    if "histogram" in rec:
        kids.append(dcc.Graph(figure=histogram_figure(rec.get("histogram")), config={"displaylogo": False},
                              id="feature-histogram"))
    else:
        kids.append(note("activation histogram: not recorded in this run's features.jsonl"))
    if "examples" not in rec:
        kids.append(html.H4("top activating examples"))
        kids.append(html.Div("top activating examples are not recorded in this run's features.jsonl (the "
                             "labelling export keeps explanations and scores; the examples stay in the job's ledger)",
                             className="ib-note", id="feature-no-examples"))
        return kids
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
