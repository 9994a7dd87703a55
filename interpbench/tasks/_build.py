"""Shared tokenizer checks for the task generators.

1. Tokenise each clean and corrupted prompt with the model's tokenizer (``prepend_bos``
   as asked) and each answer / wrong continuation without BOS.
2. Drop a pair, with its reason, when an answer or wrong continuation is not exactly one
   token, when answer == wrong, or when clean and corrupted differ in token length.
3. Keep only pairs with the most common prompt length (so every position means the same
   thing across the batch); the others are dropped with their reason.
4. Build the :class:`PromptPairs`; an empty result raises (via ``PromptPairs``).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Optional

import torch

from .base import PromptPairs


def single_token(tokenizer, text: str) -> Optional[int]:
    """The id if ``text`` is exactly one token for ``tokenizer`` (no BOS), else None."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


def encode(model, text: str, prepend_bos: bool) -> list[int]:
    tok = model.tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    if prepend_bos and tok.bos_token_id is not None:
        ids = [tok.bos_token_id] + ids
    return ids


def build_pairs(model, name: str, rows: Iterable[tuple], *, prepend_bos: bool = True, meta: Optional[dict] = None,
                dropped: Iterable[str] = (), n: Optional[int] = None) -> PromptPairs:
    """PromptPairs from ``(label, clean, corrupted, answer, wrong)`` text rows, checked as in the module docstring."""
    tok = model.tokenizer
    drop = list(dropped)
    kept: list[tuple] = []
    for label, clean, corrupted, answer, wrong in rows:
        a, w = single_token(tok, answer), single_token(tok, wrong)
        if a is None or w is None:
            bad = answer if a is None else wrong
            drop.append(f"{label}: continuation {bad!r} is {len(tok(bad, add_special_tokens=False)['input_ids'])} "
                        f"tokens, not 1")
            continue
        if a == w:
            drop.append(f"{label}: answer and wrong are the same token {answer!r}")
            continue
        c, k = encode(model, clean, prepend_bos), encode(model, corrupted, prepend_bos)
        if len(c) != len(k):
            drop.append(f"{label}: clean is {len(c)} tokens but corrupted is {len(k)}")
            continue
        kept.append((label, clean, corrupted, c, k, a, w))
    if kept:
        mode = Counter(len(r[3]) for r in kept).most_common(1)[0][0]
        for r in kept:
            if len(r[3]) != mode:
                drop.append(f"{r[0]}: {len(r[3])} tokens, not the batch length {mode}")
        kept = [r for r in kept if len(r[3]) == mode]
    if n is not None:
        kept = kept[:n]
    dev = model.device
    if not kept:
        z = torch.zeros(0, 0, dtype=torch.long, device=dev)
        z1 = torch.zeros(0, dtype=torch.long, device=dev)
        return PromptPairs(name, z, z, z1, z1, dropped=tuple(drop), meta=meta or {})  # raises: empty task
    return PromptPairs(
        name=name,
        clean=torch.tensor([r[3] for r in kept], dtype=torch.long, device=dev),
        corrupted=torch.tensor([r[4] for r in kept], dtype=torch.long, device=dev),
        answer=torch.tensor([r[5] for r in kept], dtype=torch.long, device=dev),
        wrong=torch.tensor([r[6] for r in kept], dtype=torch.long, device=dev),
        clean_text=tuple(r[1] for r in kept), corrupted_text=tuple(r[2] for r in kept),
        dropped=tuple(drop), meta=dict(meta or {}, prepend_bos=prepend_bos),
    )
