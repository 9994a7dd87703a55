"""Induction: random tokens repeated, with a random offset of the repeat.

1. Each prompt is ``BOS, filler (L-1-k tokens), r_1..r_L, r_1..r_k`` with ``r`` random
   ordinary tokens and ``k`` uniform in ``[1, L-1]`` per prompt, so every prompt has the
   same length ``2L`` while the repeated segment sits at a random offset.
2. Answer = ``r_{k+1}`` (what an induction head copies).
3. Corrupted: the same prompt with ``r_{k+1}`` in the *first* copy replaced by another
   random token ``w``; wrong = ``w`` (what induction predicts on the corrupted prompt).
   Clean and corrupted differ in exactly one token.
4. Random tokens come from ids that are not special tokens, all distinct within a prompt;
   they are ids, so single-tokenness holds by construction.
"""

from __future__ import annotations

import torch

from .base import PromptPairs
from .registry import register_task


@register_task("induction")
def induction(model, n: int = 16, seed: int = 0, *, seq_len: int = 8, prepend_bos: bool = True,
              vocab_range: tuple[int, int] | None = None):
    """Induction pairs of length ``2*seq_len`` (+0; BOS is the first of the filler slots)."""
    from ..errors import InterpbenchError

    if seq_len < 2:
        raise InterpbenchError(f"induction seq_len must be >= 2, got {seq_len}")
    tok = model.tokenizer
    g = torch.Generator().manual_seed(seed)
    special = set(getattr(tok, "all_special_ids", []) or [])
    lo, hi = vocab_range or (min(1000, len(tok) // 4), len(tok))
    L = seq_len
    clean, corrupted, answer, wrong = [], [], [], []
    bos = tok.bos_token_id if prepend_bos else None
    for _ in range(n):
        while True:
            ids = torch.randint(lo, hi, (3 * L,), generator=g).tolist()
            if len(set(ids)) == len(ids) and not special.intersection(ids):
                break
        r, filler, w = ids[:L], ids[L:2 * L], ids[2 * L]
        k = int(torch.randint(1, L, (1,), generator=g))
        head = filler[:L - 1 - k]
        if bos is not None:
            head = [bos] + head
        else:
            head = filler[L - 1 - k:L - k] + head
        c = head + r + r[:k]
        r2 = list(r)
        r2[k] = w
        x = head + r2 + r[:k]
        clean.append(c), corrupted.append(x), answer.append(r[k]), wrong.append(w)
    dev = model.device
    t = lambda v: torch.tensor(v, dtype=torch.long, device=dev)  # noqa: E731
    return PromptPairs("induction", t(clean), t(corrupted), t(answer), t(wrong),
                       tuple(tok.decode(c) for c in clean), tuple(tok.decode(x) for x in corrupted),
                       meta={"seed": seed, "n": n, "seq_len": L, "vocab_range": [lo, hi], "prepend_bos": prepend_bos})
