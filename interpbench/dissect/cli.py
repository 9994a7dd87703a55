"""``interpbench dissect``: unit dissection of a language model's sites, or the vision demo."""

from __future__ import annotations

from typing import Optional

import typer

_registered: set[int] = set()


def register(app: typer.Typer) -> None:
    """Add the ``dissect`` command to ``app`` (once per app)."""
    if id(app) in _registered:
        return
    _registered.add(id(app))

    @app.command("dissect")
    def dissect_cmd(
        model: str = typer.Option("smollm2-135m", "--model", help="model spec (text dissection)"),
        sites: str = typer.Option("blocks.*.mlp.hook_post", "--sites", help="site name or fnmatch pattern"),
        concepts: str = typer.Option("builtin", "--concepts", help="builtin, or a concepts JSONL file"),
        n_texts: int = typer.Option(64, "--n-texts", help="corpus documents (builtin concepts)"),
        max_len: int = typer.Option(64, "--max-len", help="tokens per document"),
        quantile: float = typer.Option(0.995, "--quantile", help="activation threshold quantile (top 0.5 %)"),
        iou_threshold: float = typer.Option(0.04, "--iou-threshold", help="label when the best IoU exceeds this"),
        comp_units: int = typer.Option(8, "--comp-units", help="units per site with compositional labels"),
        vision_demo: bool = typer.Option(False, "--vision-demo", help="run the synthetic-scenes CNN demo instead"),
        n_images: int = typer.Option(400, "--n-images", help="scenes for the vision demo"),
        cls: str = typer.Option("house", "--class", help="class analysed by the vision demo"),
        name: Optional[str] = typer.Option(None, "--name", help="run name under cache/runs/ (default dissect-text|dissect-vision)"),
        force: bool = typer.Option(False, "--force", help="recompute even if the run is cached"),
        device: Optional[str] = typer.Option(None, "--device"),
    ) -> None:
        """Label units with concepts (IoU, Network Dissection); vision demo adds unit and path interventions."""
        from ..recipes import execute
        from .kinds import TEXT_KIND, VISION_KIND

        if vision_demo:
            from .vision.demo import VisionDemoConfig

            cfg = VisionDemoConfig(n_images=n_images, cls=cls, quantile=quantile, iou_threshold=iou_threshold,
                                   device=device)
            path = execute(VISION_KIND, cfg, name or "dissect-vision", force=force, echo=typer.echo)
        else:
            from .run_text import TextDissectConfig

            cfg = TextDissectConfig(model=model, sites=sites, concepts=concepts, n_texts=n_texts, max_len=max_len,
                                    quantile=quantile, iou_threshold=iou_threshold, comp_units=comp_units,
                                    device=device)
            path = execute(TEXT_KIND, cfg, name or "dissect-text", force=force, echo=typer.echo)
        typer.echo(str(path))
