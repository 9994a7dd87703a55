"""Pure plotly figure builders for records (no model access, no I/O)."""

from __future__ import annotations

from typing import Optional, Sequence

import plotly.graph_objects as go


def heatmap(values, axes: Sequence[str], labels: dict, title: str, ci_low=None, ci_high=None,
            colorbar: str = "value", zmid: Optional[float] = 0.0) -> go.Figure:
    """Heatmap of a 2-D grid ``values[axes[0]][axes[1]]`` with tick labels and CIs on hover."""
    y_name, x_name = axes[0], axes[1]
    ys = [str(v) for v in labels.get(y_name, range(len(values)))]
    xs = labels.get(x_name, list(range(len(values[0]) if len(values) else 0)))
    xs = [f"{i}:{s!r}" if x_name == "pos" else str(s) for i, s in enumerate(xs)]
    custom = None
    hover = f"{y_name}=%{{y}}<br>{x_name}=%{{x}}<br>{colorbar}=%{{z:.4f}}"
    if ci_low is not None and ci_high is not None:
        custom = [[[lo, hi] for lo, hi in zip(rl, rh)] for rl, rh in zip(ci_low, ci_high)]
        hover += "<br>95% CI [%{customdata[0]:.4f}, %{customdata[1]:.4f}]"
    fig = go.Figure(go.Heatmap(z=values, x=xs, y=ys, colorscale="RdBu", zmid=zmid, customdata=custom,
                               hovertemplate=hover + "<extra></extra>", colorbar={"title": colorbar}))
    fig.update_layout(title=title, xaxis_title=x_name, yaxis_title=y_name, template="plotly_white",
                      height=max(350, 18 * len(ys) + 150))
    return fig
