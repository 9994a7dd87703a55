"""Registry of prompt-pair task generators (names shared by recipes, CLI and app).

1. A generator is a function ``gen(model, n: int = 16, seed: int = 0, **kw) -> PromptPairs``.
2. ``@register_task("name")`` adds it to :data:`TASKS`; a duplicate name is an error.
3. :func:`make_task` looks a name up (importing the built-in task modules on first use)
   and calls the generator.
"""

from __future__ import annotations

import importlib
from typing import Callable

from ..errors import InterpbenchError

TASKS: dict[str, Callable] = {}
"""Task name -> generator ``(model, n=16, seed=0, **kw) -> PromptPairs``."""

_BUILTIN_MODULES = ("ioi", "greater_than", "induction", "jsonl", "facts", "gender")


def register_task(name: str) -> Callable[[Callable], Callable]:
    """Decorator registering a task generator under ``name`` (duplicates raise)."""

    def deco(fn: Callable) -> Callable:
        if name in TASKS and TASKS[name] is not fn:
            raise InterpbenchError(f"task {name!r} is already registered (by {TASKS[name].__module__}); "
                                   f"pick another name")
        TASKS[name] = fn
        return fn

    return deco


def load_builtin_tasks() -> None:
    """Import the built-in task modules so their generators register (idempotent)."""
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as e:  # a task module not shipped (yet) is skipped, others re-raise
            if e.name != f"{__package__}.{mod}":
                raise


def make_task(name: str, model, n: int = 16, seed: int = 0, **kw):
    """Build the :class:`PromptPairs` of task ``name`` for ``model``'s tokenizer."""
    load_builtin_tasks()
    if name not in TASKS:
        raise InterpbenchError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](model, n=n, seed=seed, **kw)
