"""Pure plotly figure builders: dicts in, ``go.Figure`` out (no I/O, no app state).

* :func:`patching_heatmap` — one score array of a run (layer × position or layer × head)
  with the token strings on the x axis, metric and convention in the title, and the CI of
  every cell on hover.
* :func:`faithfulness_figure` — faithfulness of the pruned circuit against its size.
* :func:`histogram_figure` — a feature's activation histogram.
* :func:`message_figure` — an empty figure that says why there is nothing to draw.
"""

from __future__ import annotations

import html
import math
from typing import Any, Optional

import plotly.graph_objects as go

from .data import AppDataError, finite

_LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=60),
               font=dict(family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", size=12))


def convention_text(metric: Any) -> str:
    """``name (k=v, ...)`` of a result's ``metric`` record."""
    if not isinstance(metric, dict):
        return "metric n/a"
    name = str(metric.get("name", "metric"))
    conv = metric.get("convention")
    if conv is None:  # records that spell the convention out as fields (direction, aggregate, ...)
        conv = {k: v for k, v in metric.items() if k != "name" and isinstance(v, (str, int, float, bool))}
    if isinstance(conv, dict):
        conv = {k: v for k, v in conv.items() if k not in ("name", "schema_version")}
    if isinstance(conv, dict) and conv:
        return f"{name} ({', '.join(f'{k}={v}' for k, v in conv.items())})"
    if isinstance(conv, str) and conv:
        return f"{name} ({conv})"
    return name


def _matrix(x: Any, what: str) -> list[list[Optional[float]]]:
    if not isinstance(x, list) or not x or not all(isinstance(r, list) for r in x):
        raise AppDataError(f"{what} must be a 2-D nested list")
    width = len(x[0])
    if any(len(r) != width for r in x):
        raise AppDataError(f"{what} is ragged (rows of different lengths)")
    return [[finite(v) for v in r] for r in x]


def _tok(t: Any) -> str:
    """A token as plotly text: HTML-escaped (plotly renders ``<s>`` as a tag otherwise), newlines visible."""
    return html.escape(str(t), quote=False).replace("\n", "↵")


def _flatten3(score: dict, name: str) -> tuple[list, list, list]:
    """[layer, A, B] values (and CIs) as [layer, A*B] with columns ordered A-major."""
    out = []
    for key in ("values", "ci_low", "ci_high"):
        x = score.get(key)
        if not isinstance(x, list):
            out.append(None)
            continue
        try:
            out.append([[v for inner in row for v in inner] for row in x])
        except TypeError:
            raise AppDataError(f"score {name!r} {key} is not a 3-D nested list") from None
    return out[0], out[1], out[2]


def column_labels(axes: list, labels: dict, n_cols: int, shape3: Optional[tuple] = None) -> list[str]:
    """Tick text of the columns: token strings for positions, ``H{i}`` for heads."""
    def one(ax: str, n: int) -> list[str]:
        for key in (("tokens", "pos") if ax == "pos" else (ax,)):
            lab = labels.get(key)
            if isinstance(lab, list) and len(lab) == n and (ax != "pos" or key == "tokens" or
                                                              any(isinstance(t, str) for t in lab)):
                return [_tok(t) for t in lab]
        return [f"H{i}" for i in range(n)] if ax == "head" else [str(i) for i in range(n)]

    if shape3 is None:
        return one(axes[1], n_cols)
    first, second = one(axes[1], shape3[0]), one(axes[2], shape3[1])
    return [f"{a}·{b}" for a in first for b in second]


def patching_heatmap(name: str, score: dict, result: dict) -> go.Figure:
    """Heatmap of ``result['scores'][name]`` (axes ``[layer, pos|head|...]``; 3-D arrays are
    drawn with their last two axes side by side, e.g. ``pos·head`` columns)."""
    if not isinstance(score, dict):
        raise AppDataError(f"score {name!r} must be an object with values and axes")
    axes = score.get("axes") if isinstance(score.get("axes"), list) and len(score["axes"]) in (2, 3) else ["row", "col"]
    raw, lo_raw, hi_raw = score.get("values"), score.get("ci_low"), score.get("ci_high")
    shape3 = None
    if len(axes) == 3:
        try:
            shape3 = (len(raw[0]), len(raw[0][0]))
        except (TypeError, IndexError):
            raise AppDataError(f"score {name!r} has 3 axes but its values are not a 3-D nested list") from None
        raw, lo_raw, hi_raw = _flatten3(score, name)
    z = _matrix(raw, f"score {name!r} values")
    n_rows, n_cols = len(z), len(z[0])
    labels = score.get("labels") if isinstance(score.get("labels"), dict) else {}
    ticktext = column_labels(axes, labels, n_cols, shape3)
    layer_lab = labels.get(axes[0])
    rowtext = [str(x) for x in layer_lab] if isinstance(layer_lab, list) and len(layer_lab) == n_rows else \
        [str(i) for i in range(n_rows)]
    ci = None
    if isinstance(lo_raw, list) and isinstance(hi_raw, list):
        lo, hi = _matrix(lo_raw, f"score {name!r} ci_low"), _matrix(hi_raw, f"score {name!r} ci_high")
        if len(lo) == n_rows and len(lo[0]) == n_cols and len(hi) == n_rows and len(hi[0]) == n_cols:
            ci = (lo, hi)
    custom = [[[ticktext[c], rowtext[r],
                (f"[{ci[0][r][c]:.4g}, {ci[1][r][c]:.4g}]" if ci and ci[0][r][c] is not None
                 and ci[1][r][c] is not None else "n/a")] for c in range(n_cols)] for r in range(n_rows)]
    finite_vals = [abs(v) for row in z for v in row if v is not None]
    zmax = (max(finite_vals) if finite_vals else 0.0) or 1.0
    col_axis = "·".join(axes[1:])
    fig = go.Figure(go.Heatmap(
        z=[[v if v is not None else math.nan for v in row] for row in z], x=list(range(n_cols)),
        y=list(range(n_rows)), customdata=custom, colorscale="RdBu", zmid=0, zmin=-zmax, zmax=zmax,
        colorbar=dict(title=dict(text="value")),
        hovertemplate=(f"{axes[0]} %{{customdata[1]}}<br>{col_axis} %{{x}}: %{{customdata[0]}}<br>value %{{z:.4g}}"
                       f"<br>95% CI %{{customdata[2]}}<extra></extra>")))
    metric = convention_text(result.get("metric"))
    recipe = result.get("recipe") or result.get("run_id") or ""
    fig.update_layout(**_LAYOUT, title=dict(text=html.escape(f"{recipe} · {name}: {metric}", quote=False), x=0.01),
                      height=max(320, 60 + 22 * n_rows + 120))
    fig.update_xaxes(title_text=col_axis, tickmode="array", tickvals=list(range(n_cols)), ticktext=ticktext,
                     tickangle=-45 if "pos" in axes[1:] else 0, showgrid=False)
    fig.update_yaxes(title_text=axes[0], tickmode="array", tickvals=list(range(n_rows)), ticktext=rowtext,
                     showgrid=False)
    return fig


def _curves(faith: dict) -> list[dict]:
    """Curves of a faithfulness block: ``{sizes, values, cpr, cmd, ablation}`` or the MIB block
    of :mod:`interpbench.graphs.faithfulness` (``ablations: {abl: {curve_signed, curve_abs, cpr, cmd}}``)."""
    if isinstance(faith.get("ablations"), dict):
        out = []
        for abl, block in faith["ablations"].items():
            if not isinstance(block, dict):
                continue
            for key, label in (("curve_signed", "signed"), ("curve_abs", "|score|")):
                c = block.get(key)
                if isinstance(c, dict):
                    out.append({"name": f"{abl}, {label}", "x": c.get("edges_kept") or c.get("percentages") or [],
                                "y": c.get("faithfulness") or [], "ci": c.get("ci95"), "dash": key == "curve_abs",
                                "bits": [f"{abl}: CPR {block['cpr']:.3g}" if finite(block.get("cpr")) is not None else "",
                                         f"CMD {block['cmd']:.3g}" if finite(block.get("cmd")) is not None else ""]
                                if key == "curve_signed" else []})
        return out
    bits = [f"{label} {faith[key]:.3g}" for key, label in (("cpr", "CPR"), ("cmd", "CMD"))
            if finite(faith.get(key)) is not None]
    if faith.get("ablation"):
        bits.append(f"ablation {faith['ablation']}")
    return [{"name": "faithfulness", "x": faith.get("sizes") or [], "y": faith.get("values") or [],
             "ci": faith.get("ci"), "dash": False, "bits": bits}]


def _seed_bits(sv: Any) -> list:
    """Title fragments for a ``seed_variance`` block (CPR / CMD mean ± std over prompt seeds)."""
    if not isinstance(sv, dict) or not isinstance(sv.get("seeds"), list):
        return []
    out = []
    for key in ("cpr", "cmd"):
        st = sv.get(key)
        if isinstance(st, dict) and finite(st.get("mean")) is not None and finite(st.get("std")) is not None:
            out.append(f"{key.upper()} {st['mean']:.3f} ± {st['std']:.3f} over {len(sv['seeds'])} seeds")
    return out


def faithfulness_figure(faith: Optional[dict]) -> go.Figure:
    """Faithfulness (metric recovered) against circuit size, with CPR / CMD in the title."""
    if not isinstance(faith, dict):
        return message_figure("no faithfulness curve in this run")
    fig, bits, xs_all = go.Figure(), [], []
    for c in _curves(faith):
        xs, ys = c["x"] if isinstance(c["x"], list) else [], c["y"] if isinstance(c["y"], list) else []
        pts = [(finite(x), finite(y), i) for i, (x, y) in enumerate(zip(xs, ys))]
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        if not pts:
            continue
        ci = c["ci"] if isinstance(c["ci"], list) and len(c["ci"]) == len(xs) else None
        err = None
        if ci and all(isinstance(v, (list, tuple)) and len(v) == 2 and finite(v[0]) is not None
                      and finite(v[1]) is not None for v in ci):
            err = dict(type="data", symmetric=False, array=[ci[i][1] - y for _, y, i in pts],
                       arrayminus=[y - ci[i][0] for _, y, i in pts], thickness=1)
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=c["name"],
                                 error_y=err, line=dict(dash="dash" if c["dash"] else "solid"),
                                 hovertemplate="%{x} edges<br>faithfulness %{y:.3f}<extra>" + c["name"] + "</extra>"))
        bits += [b for b in c["bits"] if b]
        xs_all += [p[0] for p in pts]
    if not fig.data:
        return message_figure("the faithfulness curve is empty")
    bits += _seed_bits(faith.get("seed_variance"))
    fig.add_hline(y=1.0, line_dash="dot", line_color="#888")
    fig.update_layout(**{**_LAYOUT, "margin": dict(l=50, r=10, t=50, b=40)}, height=300, showlegend=len(fig.data) > 1,
                      legend=dict(orientation="h", y=-0.3, font=dict(size=10)),
                      title=dict(text="faithfulness" + (f" ({', '.join(bits)})" if bits else ""), x=0.01,
                                 font=dict(size=12)))
    pos = [x for x in xs_all if x > 0]
    log_x = bool(pos) and max(pos) > 50 * min(pos)
    fig.update_xaxes(title_text="circuit size (edges)", type="log" if log_x else "linear")
    fig.update_yaxes(title_text="metric recovered")
    return fig


def _hist_title(hist: dict) -> str:
    n, a = hist.get("n_tokens"), hist.get("n_active")
    if isinstance(n, int) and isinstance(a, int) and n > 0:
        return f"activation histogram (active on {a:,} of {n:,} harvested tokens, {100 * a / n:.2f} %)"
    return "activation histogram"


def histogram_figure(hist: Any) -> go.Figure:
    """Bar chart of a feature's activation histogram {edges: [k+1], counts: [k]}."""
    if not isinstance(hist, dict):
        return message_figure("no activation histogram for this feature")
    edges, counts = hist.get("edges") or [], hist.get("counts") or []
    if not isinstance(edges, list) or not isinstance(counts, list) or len(edges) != len(counts) + 1 or not counts:
        return message_figure("the activation histogram is malformed (needs len(edges) == len(counts) + 1)")
    e = [finite(x) or 0.0 for x in edges]
    c = [finite(x) or 0.0 for x in counts]
    fig = go.Figure(go.Bar(x=[(e[i] + e[i + 1]) / 2 for i in range(len(c))], y=c,
                           width=[e[i + 1] - e[i] for i in range(len(c))], marker_color="#e6842a",
                           hovertemplate="activation %{x:.3g}<br>count %{y}<extra></extra>"))
    fig.update_layout(**{**_LAYOUT, "margin": dict(l=50, r=10, t=40, b=40)}, height=260,
                      title=dict(text=_hist_title(hist), x=0.01, font=dict(size=12)), bargap=0)
    pos = [x for x in c if x > 0]
    fig.update_yaxes(type="log" if pos and max(pos) > 100 * min(pos) else "linear")
    return fig


def message_figure(text: str) -> go.Figure:
    """An empty figure whose only content is ``text``."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=13))
    fig.update_layout(**{**_LAYOUT, "margin": dict(l=10, r=10, t=10, b=10)}, height=220)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
