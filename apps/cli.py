"""``interpbench app``: serve the Dash app over a runs directory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("app")
    def app_cmd(runs: Optional[Path] = typer.Option(None, "--runs", help="runs directory (default: cache/runs)"),
                host: str = typer.Option("127.0.0.1", "--host", help="interface to bind (default: loopback only)"),
                port: int = typer.Option(8050, "--port", help="port to serve on"),
                max_file_mb: float = typer.Option(64.0, "--max-file-mb",
                                                  help="largest graph/features file the app reads")) -> None:
        """Serve the app: runs, causal graphs, patching heatmaps, SAE features (http://127.0.0.1:8050/)."""
        from .server import serve

        serve(runs_dir=runs, host=host, port=port, max_file_mb=max_file_mb)
