"""interpbench: a mechanistic-interpretability workbench.

Open a real model, name any internal activation, intervene on it, get causal answers.
Importing the package is cheap: heavy modules load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["load_model", "Site", "Trace", "__version__"]


def __getattr__(name):  # lazy, so `import interpbench` stays cheap and side-effect free
    if name == "load_model":
        from .models.loading import load_model

        return load_model
    if name == "Site":
        from .sites import Site

        return Site
    if name == "Trace":
        from .tracing import Trace

        return Trace
    if name in ("interventions", "sites", "tracing", "models", "errors"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'interpbench' has no attribute {name!r}")
