"""User prompt pairs from a JSONL file.

1. Each non-empty line is one JSON object ``{"clean": str, "corrupted": str, "answer":
   str, "wrong": str}`` (answer/wrong are the continuations whose logit difference is
   measured, e.g. ``" Paris"`` with its leading space). Other keys are an error.
2. A line that is not such an object raises with its line number (malformed input).
3. Pairs that do not tokenise cleanly (answers not one token, unequal lengths) are dropped
   and reported in ``PromptPairs.dropped`` (see :mod:`._build`); no usable pair raises.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InterpbenchError
from ._build import build_pairs
from .registry import register_task

FIELDS = ("clean", "corrupted", "answer", "wrong")


def read_jsonl(path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise InterpbenchError(f"JSONL pairs file {str(p)!r} does not exist")
    rows = []
    for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InterpbenchError(f"{p}:{i}: not valid JSON ({e.msg}); each line must be one object "
                                   f'{{"clean", "corrupted", "answer", "wrong"}}') from None
        if not isinstance(obj, dict) or set(obj) != set(FIELDS) or not all(isinstance(obj[k], str) for k in FIELDS):
            got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise InterpbenchError(f"{p}:{i}: expected string fields {list(FIELDS)} exactly, got {got}")
        rows.append(obj)
    return rows


def from_jsonl(path, model, *, prepend_bos: bool = True, n=None):
    """Load ``{"clean","corrupted","answer","wrong"}`` pairs from ``path`` for ``model``'s tokenizer."""
    rows = read_jsonl(path)
    items = [(f"line {i + 1}", r["clean"], r["corrupted"], r["answer"], r["wrong"]) for i, r in enumerate(rows)]
    return build_pairs(model, f"jsonl:{Path(path).name}", items, prepend_bos=prepend_bos,
                       meta={"path": str(path), "n_lines": len(rows)}, n=n)


@register_task("jsonl")
def jsonl(model, n: int = 16, seed: int = 0, *, path: str, prepend_bos: bool = True):
    """Registry entry: ``make_task("jsonl", model, path=...)`` (``seed`` unused; first ``n`` usable pairs)."""
    return from_jsonl(path, model, prepend_bos=prepend_bos, n=n)
