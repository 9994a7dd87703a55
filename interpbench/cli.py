"""The ``interpbench`` command.

Each capability owns its subcommands in ``interpbench/<area>/cli.py`` and exposes
``register(app: typer.Typer)``; this file only wires them in (lazily importing nothing
heavy) and turns :class:`~interpbench.errors.InterpbenchError` into one line on stderr and
exit code 2 (a traceback only with ``--debug``).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="interpbench: trace, patch, attribute, and explain real models.")

# Areas that add subcommands. Each module has register(app). Missing ones are skipped.
AREAS = ["interpbench.recipes_cli", "interpbench.graphs.cli",
         "interpbench.sae.cli", "interpbench.explain.cli", "interpbench.dissect.cli", "apps.cli"]

DeviceOpt = typer.Option(None, "--device", help="cpu, cuda, cuda:N, mps or auto (default: auto)")
DtypeOpt = typer.Option(None, "--dtype", help="float32 (default), float16, bfloat16")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="show full tracebacks")) -> None:
    if debug:
        os.environ["INTERPBENCH_DEBUG"] = "1"


@app.command()
def version() -> None:
    """Print the versions of interpbench and its engines."""
    import torch
    import transformers

    from . import __version__

    print(f"interpbench {__version__}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    for pkg in ("transformer_lens", "nnsight"):
        try:
            from importlib.metadata import version as v

            print(f"{pkg.replace('_', '-')} {v(pkg.replace('_', '-'))}")
        except Exception:  # noqa: BLE001
            print(f"{pkg} not installed")


@app.command()
def models() -> None:
    """List the bundled models and the models converted under cache/models."""
    from rich.console import Console
    from rich.table import Table

    from .models.loading import BUNDLED, converted_dir
    from .paths import cache_dir

    table = Table(title="models")
    table.add_column("spec")
    table.add_column("what")
    table.add_column("cached")
    for name, what in BUNDLED.items():
        cached = (converted_dir(name) / "model.safetensors").exists()
        table.add_row(name, what, "yes" if cached else ("n/a" if name == "minilm-l6" else "no (converted on first load)"))
    root = cache_dir() / "models"
    for d in sorted(root.glob("*")) if root.exists() else []:
        if d.is_dir() and d.name not in BUNDLED and not d.name.startswith("."):
            table.add_row(str(d), "converted/local", "yes")
    Console().print(table)


@app.command()
def inspect(model: str = typer.Argument("smollm2-135m", help="model spec"),
            device: Optional[str] = DeviceOpt, dtype: Optional[str] = DtypeOpt,
            pattern: str = typer.Option("*", "--sites", help="fnmatch filter on site names"),
            prompt: str = typer.Option("The quick brown fox", help="prompt used to measure shapes")) -> None:
    """Print a model's config and every site with its shape."""
    import fnmatch

    from rich.console import Console
    from rich.table import Table

    from .models.loading import load_model

    m = load_model(model, device=device, dtype=dtype)
    shapes = m.site_shapes(prompt)
    console = Console()
    console.print(repr(m))
    table = Table(title=f"sites of {model} on {prompt!r} ({len(m.to_tokens(prompt)[0])} tokens)")
    for col in ("site", "shape", "axes", "module"):
        table.add_column(col)
    for name, shape in shapes.items():
        if fnmatch.fnmatchcase(name, pattern):
            d = m.site_def(name)
            table.add_row(name, str(shape), " ".join(d.axes), f"{d.module} ({d.where})")
    console.print(table)


@app.command()
def demo(model: str = typer.Option("smollm2-135m", help="model spec"),
         device: Optional[str] = DeviceOpt, dtype: Optional[str] = DtypeOpt,
         prompt: str = typer.Option("The capital of France is", help="prompt to complete"),
         app_: bool = typer.Option(False, "--app", help="serve the app on the demo runs at the end")) -> None:
    """The main job on the bundled model: completion, site table, and the demo recipes."""
    from .demo import run_demo

    run_demo(model=model, device=device, dtype=dtype, prompt=prompt, serve_app=app_)


_REGISTERED = False


def _register_areas() -> None:
    global _REGISTERED
    if _REGISTERED:
        return
    _REGISTERED = True
    for mod_name in AREAS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name and mod_name.startswith(exc.name):
                continue  # area not built (yet)
            raise
        mod.register(app)


def main(argv: Optional[list[str]] = None) -> None:
    from .errors import InterpbenchError

    _register_areas()
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False)
    except InterpbenchError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    except (typer.Exit, SystemExit) as exc:
        raise SystemExit(getattr(exc, "exit_code", getattr(exc, "code", 0)))
    except Exception as exc:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            raise SystemExit(2)
        if isinstance(exc, click.exceptions.Abort):
            raise SystemExit(130)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
