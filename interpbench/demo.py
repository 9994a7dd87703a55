"""``make demo`` / ``interpbench demo``: the main job on the bundled model.

1. Load the model (converting the bundled GGUF once) and print a greedy completion.
2. Print the site table (name, shape) for a short prompt.
3. Run each demo recipe that exists (IOI residual patching, ...) and print where its
   figure is; finally, with ``--app``, serve the app on the runs and print its URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

DEMO_RECIPES = ["ioi_resid_patching", "ioi_circuit"]


def run_demo(model: str = "smollm2-135m", device: Optional[str] = None, dtype: Optional[str] = None,
             prompt: str = "The capital of France is", serve_app: bool = False) -> None:
    import time

    from rich.console import Console
    from rich.table import Table

    from .models.loading import load_model

    console = Console()
    t0 = time.perf_counter()
    m = load_model(model, device=device, dtype=dtype)
    console.print(f"[bold]loaded[/bold] {m!r} in {time.perf_counter() - t0:.1f} s")
    if m.cfg.causal:
        out = m.generate(prompt, max_new_tokens=12)
        console.print(f"[bold]greedy completion[/bold]: {prompt!r} -> {m.to_string(out[0, m.to_tokens(prompt).shape[1]:])!r}")
    shapes = m.site_shapes(prompt)
    table = Table(title=f"sites of {model} (prompt: {prompt!r})")
    table.add_column("site")
    table.add_column("shape")
    for name, shape in shapes.items():
        if name.startswith(("blocks.0.", f"blocks.{m.cfg.n_layers - 1}.")) or not name.startswith("blocks."):
            table.add_row(name, str(shape))
    console.print(table)
    console.print(f"({len(shapes)} sites in all: {m.cfg.n_layers} blocks × {len(shapes) // m.cfg.n_layers} "
                  f"per block; blocks 1..{m.cfg.n_layers - 2} omitted — `interpbench inspect {model}` lists every one)")
    run_dirs = []
    recipes_dir = Path(__file__).resolve().parent.parent / "recipes"
    try:
        from .recipes import run_recipe_file
    except ImportError:
        run_recipe_file = None
    if run_recipe_file is not None:
        for name in DEMO_RECIPES:
            path = recipes_dir / f"{name}.yaml"
            if path.exists():
                console.print(f"[bold]recipe[/bold] {name} ...")
                run_dir = run_recipe_file(path, overrides={"model": model}, device=device)
                run_dirs.append(run_dir)
                figs = sorted(Path(run_dir).glob("*.html"))
                console.print(f"  figure: {figs[0] if figs else '(none)'}")
                console.print(f"  run dir: {run_dir}")
    if serve_app:
        try:
            from apps.server import serve
        except ImportError:
            console.print("the app is not built yet; skipping")
            return
        serve(runs_dir=None, host="127.0.0.1", port=8050)
