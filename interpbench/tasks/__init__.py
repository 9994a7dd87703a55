"""Prompt-pair task generators: IOI, greater-than, induction, facts, gender, JSONL pairs.

``make_task(name, model, n, seed, **kw)`` builds any registered task; ``TASKS`` lists them.
"""

from .base import PromptPairs
from .registry import TASKS, load_builtin_tasks, make_task, register_task


def from_jsonl(path, model, **kw) -> PromptPairs:
    """Load user pairs ``{"clean","corrupted","answer","wrong"}`` from a JSONL file."""
    from .jsonl import from_jsonl as _f

    return _f(path, model, **kw)


__all__ = ["PromptPairs", "TASKS", "make_task", "register_task", "load_builtin_tasks", "from_jsonl"]
