"""Repeated random token sequences: training data and clean/corrupted pairs for induction.

Training sequences (:func:`repeat_batch`):

1. position 0 is BOS (token 0); every other token is uniform over ``1 .. d_vocab-1``;
2. a segment of random length ``L`` starting at a random ``s`` is copied to a random later
   offset ``r >= s + L`` (both offsets random, so no head can solve it by position);
3. the loss mask selects the positions ``r .. r+L-2``, whose next token is predictable
   only by induction (find the earlier copy of the current token, read what followed it).

Prompt pairs (:func:`induction_pairs`), all of length ``seq_len``:

1. clean: BOS, distinct random tokens, with a segment ``A`` (length ``L``) at ``s`` and its
   first ``k+1`` tokens repeated at the end, so the last token is ``A[k]`` and the answer
   is ``A[k+1]``;
2. corrupted: the same prompt with the whole first half (every position before the repeat)
   resampled from tokens that occur neither in the repeat nor as the answer, so the last token has no
   earlier occurrence and nothing to copy; ``wrong`` is the corrupted token at ``s+k+1``.
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Int
from torch import Tensor

BOS = 0


def repeat_batch(n: int, seq_len: int, d_vocab: int, gen: torch.Generator, min_seg: int = 3,
                 max_seg: int = 16) -> tuple[Int[Tensor, "batch pos"], Bool[Tensor, "batch pos"]]:
    """``(tokens, loss_mask)`` of ``n`` training sequences (see the module docstring)."""
    tokens = torch.randint(1, d_vocab, (n, seq_len), generator=gen)
    tokens[:, 0] = BOS
    mask = torch.zeros(n, seq_len, dtype=torch.bool)
    max_seg = min(max_seg, (seq_len - 1) // 2)
    lens = torch.randint(min_seg, max_seg + 1, (n,), generator=gen).tolist()
    u = torch.rand(n, 2, generator=gen).tolist()
    for i, L in enumerate(lens):
        s = 1 + int(u[i][0] * (seq_len - 2 * L))  # s in [1, seq_len - 2L]
        r = s + L + int(u[i][1] * (seq_len - L - (s + L) + 1))  # r in [s+L, seq_len-L]
        tokens[i, r:r + L] = tokens[i, s:s + L]
        mask[i, r:r + L - 1] = True
    return tokens, mask


def induction_pairs(n: int = 32, seed: int = 0, seq_len: int = 32, d_vocab: int = 128,
                    min_seg: int = 6, max_seg: int = 10):
    """Clean/corrupted :class:`~interpbench.tasks.base.PromptPairs` (see the module docstring)."""
    from ..tasks.base import PromptPairs

    gen = torch.Generator().manual_seed(seed)
    clean = torch.zeros(n, seq_len, dtype=torch.long)
    corr = torch.zeros(n, seq_len, dtype=torch.long)
    answer = torch.zeros(n, dtype=torch.long)
    wrong = torch.zeros(n, dtype=torch.long)
    rows = []
    for i in range(n):
        L = int(torch.randint(min_seg, max_seg + 1, (1,), generator=gen))
        k = int(torch.randint(1, L - 1, (1,), generator=gen))  # last token is A[k], answer A[k+1]
        r = seq_len - 1 - k  # start of the repeat
        s = 1 + int(torch.randint(0, r - L, (1,), generator=gen))  # s in [1, r-L]
        perm = (torch.randperm(d_vocab - 1, generator=gen) + 1)
        clean[i, 1:r] = perm[: r - 1]
        seg = clean[i, s:s + L].clone()
        clean[i, r:] = seg[: k + 1]
        others = perm[r - 1:]
        repeat_set = set(seg[: k + 2].tolist())  # the repeat and the answer
        pool = torch.tensor([t for t in others.tolist() if t not in repeat_set] +
                            [t for t in perm[: r - 1].tolist() if t not in repeat_set])
        pick = pool[torch.randperm(len(pool), generator=gen)[: r - 1]]
        corr[i, 1:r] = pick
        corr[i, r:] = clean[i, r:]
        answer[i] = seg[k + 1]
        wrong[i] = corr[i, s + k + 1]
        rows.append({"L": L, "k": k, "s": s, "r": r})
    return PromptPairs("groundtruth:induction", clean, corr, answer, wrong,
                       meta={"seed": seed, "n": n, "seq_len": seq_len, "d_vocab": d_vocab,
                             "min_seg": min_seg, "max_seg": max_seg})
