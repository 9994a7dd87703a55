"""``interpbench run RECIPE.yaml [--set key=value] [--device ...] [--force]`` and ``interpbench recipes``."""

from __future__ import annotations

from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(recipe: str = typer.Argument(..., help="recipe YAML file (see recipes/)"),
            set_: list[str] = typer.Option([], "--set", help="override a field: key=value (repeatable)"),
            device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, auto"),
            force: bool = typer.Option(False, "--force", help="recompute even if the run is cached")) -> None:
        """Run a recipe; prints a summary and, last, the run directory."""
        from .recipes import parse_overrides, run_recipe_file

        run_dir = run_recipe_file(recipe, overrides=parse_overrides(set_), device=device, force=force)
        print(run_dir)

    @app.command("recipes")
    def recipes() -> None:
        """List the recipe kinds and their fields."""
        import dataclasses

        from .recipes import RECIPE_KINDS, _load_kinds

        _load_kinds()
        for name, kind in sorted(RECIPE_KINDS.items()):
            fields = ", ".join(f.name for f in dataclasses.fields(kind.config_cls))
            print(f"{name}: {kind.doc.splitlines()[0] if kind.doc else ''}\n    fields: {fields}")
