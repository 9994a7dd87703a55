"""Build and serve the Dash app.

1. :func:`create_app` makes a Dash Pages app over one runs directory. Its settings live in
   the Flask config of that app (no module-level state), so several apps with different
   runs directories can coexist in one process (tests do this).
2. Pages (``apps/pages``) are loaded by Dash when the app is created; they read data only
   inside layouts and callbacks, through :func:`current_settings`.
3. Every script and stylesheet is served by the app itself (``serve_locally``; Dash's
   bundled React, plotly.js and cytoscape; CSS from ``apps/assets``): the page needs no
   internet and loads no external fonts.
4. :func:`serve` binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .cache import GraphCache
from .data import GRAPH_MAX_BYTES, MiB, AppDataError

_CONFIG_KEY = "INTERPBENCH_APP"
log = logging.getLogger("apps")


@dataclass(frozen=True)
class AppSettings:
    """What one app instance serves."""

    runs_dir: Path
    """Resolved runs directory; nothing outside it is ever read."""
    max_file_bytes: int = GRAPH_MAX_BYTES
    """Largest graph / features file the app reads."""
    cache: GraphCache = field(default_factory=GraphCache, compare=False, repr=False)
    """This app's cache of validated graphs (keyed by file identity)."""


def current_settings() -> AppSettings:
    """Settings of the app handling the current request (inside layouts and callbacks)."""
    import flask

    return flask.current_app.config[_CONFIG_KEY]


def default_runs_dir() -> Path:
    from interpbench.paths import cache_dir

    return cache_dir() / "runs"


def create_app(runs_dir: Optional[Path | str] = None, max_file_mb: Optional[float] = None):
    """A Dash app over ``runs_dir`` (default: ``$INTERPBENCH_CACHE/runs``)."""
    import dash

    from .components.common import nav_bar

    root = Path(runs_dir if runs_dir is not None else default_runs_dir()).expanduser().resolve()
    if not root.is_dir():
        raise AppDataError(f"runs directory {root} does not exist; run a recipe first "
                           f"(interpbench run recipes/<name>.yaml) or pass --runs DIR")
    limit = int(max_file_mb * MiB) if max_file_mb is not None else GRAPH_MAX_BYTES
    app = dash.Dash("apps", use_pages=True, serve_locally=True, title="interpbench",
                    suppress_callback_exceptions=True, update_title=None, external_stylesheets=[],
                    external_scripts=[])
    app.server.config[_CONFIG_KEY] = AppSettings(root, limit)
    app.layout = dash.html.Div([nav_bar(), dash.html.Main(dash.page_container, className="ib-main")])
    return app


def serve(runs_dir: Optional[Path | str] = None, host: str = "127.0.0.1", port: int = 8050,
          max_file_mb: Optional[float] = None) -> None:
    """Serve the app (blocking) and print its URL."""
    app = create_app(runs_dir, max_file_mb=max_file_mb)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {host}: anyone who can reach this machine can read the runs")
    print(f"interpbench app on http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/ "
          f"(runs: {app.server.config[_CONFIG_KEY].runs_dir})", flush=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=port, debug=False)
