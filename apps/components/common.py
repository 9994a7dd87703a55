"""Small shared pieces: page header, error box, key/value table, token highlighting."""

from __future__ import annotations

from typing import Any, Iterable, Optional

from dash import dcc, html


def error_box(message: str, **kwargs: Any) -> html.Div:
    """A visible, readable error (never a traceback)."""
    return html.Div(message, className="ib-error", role="alert", **kwargs)


def note(message: str) -> html.Div:
    return html.Div(message, className="ib-note")


def page_header(title: str, subtitle: Optional[str] = None) -> html.Div:
    kids = [html.H2(title, className="ib-title")]
    if subtitle:
        kids.append(html.Div(subtitle, className="ib-subtitle"))
    return html.Div(kids, className="ib-header")


def nav_bar() -> html.Nav:
    return html.Nav([dcc.Link("interpbench", href="/", className="ib-brand"),
                     dcc.Link("Runs", href="/", className="ib-navlink")], className="ib-nav")


def kv_table(rows: Iterable[tuple[str, Any]], className: str = "ib-kv") -> html.Table:
    return html.Table([html.Tr([html.Th(k), html.Td(str(v))]) for k, v in rows], className=className)


def run_facts(result: dict) -> list[tuple[str, str]]:
    """(label, value) rows describing where a run's numbers come from."""
    model = result.get("model") if isinstance(result.get("model"), dict) else {}
    task = result.get("task") if isinstance(result.get("task"), dict) else {}
    metric = result.get("metric") if isinstance(result.get("metric"), dict) else {}
    if isinstance(result.get("model"), str):  # dissection runs write model / task / metric as plain strings
        model = {"name": result["model"]}
    if isinstance(result.get("metric"), str):
        metric = {"name": result["metric"]}
    task_txt = (result["task"] if isinstance(result.get("task"), str) else
                f"{task.get('task', 'n/a')} (n={task.get('n', '?')}, seq_len={task.get('seq_len', '?')})")
    rows = [("model", model.get("name", "n/a")), ("task", task_txt),
            ("method", result.get("method", "n/a")), ("metric", metric.get("name", "n/a")),
            ("ablation", result.get("ablation", "n/a")), ("created", result.get("created", "n/a"))]
    return [(k, str(v)) for k, v in rows]


def token_spans(tokens: list, acts: list, scale: Optional[float] = None) -> html.Div:
    """Tokens with a background whose strength is the token's activation (title shows the value)."""
    vals = [a if isinstance(a, (int, float)) and not isinstance(a, bool) else 0.0 for a in acts]
    top = scale or max([abs(v) for v in vals] + [1e-12])
    spans = []
    for i, tok in enumerate(tokens):
        v = vals[i] if i < len(vals) else 0.0
        alpha = min(1.0, abs(v) / top)
        colour = f"rgba(230, 132, 42, {alpha:.2f})" if v >= 0 else f"rgba(66, 133, 244, {alpha:.2f})"
        spans.append(html.Span(str(tok), className="ib-tok", title=f"{v:.4g}",
                               style={"backgroundColor": colour}, **{"data-act": f"{v:.4g}"}))
    return html.Div(spans, className="ib-example")
