"""Indirect object identification (Wang et al. 2022) with ABC-style corruption.

1. Draw two distinct names (IO, S) and a template; the clean prompt names IO and S, then
   S again ("When Mary and John went to the store, John gave a drink to"), answer = IO,
   wrong = S.
2. The corrupted prompt fills the same template with three other distinct names (A, B, C),
   so it carries no IOI signal ("..., Carl gave a drink to"); the answer/wrong ids stay
   the clean IO/S tokens (the logit difference is measured on the same tokens).
3. Names must be single tokens with a leading space for this tokenizer; names that are not
   are dropped up front and reported (see :func:`single_token_names`).
4. Pairs go through :func:`interpbench.tasks._build.build_pairs` (length checks).
"""

from __future__ import annotations

import random

from ._build import build_pairs, single_token
from .registry import register_task

NAMES = ("Mary John Tom James Dan Sid Martin Amy Anna Sarah Paul Mark Lisa Kate Mike Alice Bob Jack Emma Ben "
         "Sam Tim Joe Max Ryan Adam Eric Jane Rose Lucy Kevin Laura Helen David Peter Steve Carl Chris Nick "
         "Alex Michael Jessica Rachel Victoria Andrew Thomas Richard Daniel Matthew Anthony").split()

# Templates: {A}, {B} introduce the names, {S} repeats the subject; all end before the IO.
TEMPLATES = (
    "When{A} and{B} went to the store,{S} gave a drink to",
    "When{A} and{B} went to the park,{S} gave a ball to",
    "Then,{A} and{B} had a long argument, and afterwards{S} said to",
    "After{A} and{B} went to the office,{S} gave a book to",
    "While{A} and{B} were working at the hospital,{S} gave a bone to",
    "Friends{A} and{B} found a bag at the garden.{S} gave it to",
)


def single_token_names(tokenizer, names=NAMES) -> tuple[list[str], list[str]]:
    """(names that are one token with a leading space, names that are not)."""
    ok = [n for n in names if single_token(tokenizer, " " + n) is not None]
    return ok, [n for n in names if n not in ok]


@register_task("ioi")
def ioi(model, n: int = 16, seed: int = 0, *, templates=None, order: str = "both", prepend_bos: bool = True):
    """IOI prompt pairs. ``templates``: indices into :data:`TEMPLATES` (default all);
    ``order``: ``ABBA`` (S is the second name), ``BABA`` (S is the first) or ``both`` (alternate)."""
    rng = random.Random(seed)
    names, bad = single_token_names(model.tokenizer)
    dropped = [f"name {b!r}: not a single token with a leading space" for b in bad]
    tpl_ids = list(range(len(TEMPLATES))) if templates is None else [int(t) for t in templates]
    rows = []
    for i in range(4 * n):  # over-generate; build_pairs keeps the modal length and we cut to n
        t = tpl_ids[i % len(tpl_ids)]
        io, s, a, b, c = rng.sample(names, 5) if len(names) >= 5 else (None,) * 5
        if io is None:
            break
        abba = order == "ABBA" or (order == "both" and i % 2 == 0)
        first, second = (io, s) if abba else (s, io)
        tpl = TEMPLATES[t]
        clean = tpl.format(A=" " + first, B=" " + second, S=" " + s)
        corrupted = tpl.format(A=" " + a, B=" " + b, S=" " + c)
        rows.append((f"template {t} ({'ABBA' if abba else 'BABA'}) {io}/{s}", clean, corrupted, " " + io, " " + s))
    meta = {"seed": seed, "n": n, "templates": tpl_ids, "order": order, "corruption": "ABC",
            "n_single_token_names": len(names), "n_names": len(NAMES)}
    return build_pairs(model, "ioi", rows, prepend_bos=prepend_bos, meta=meta, dropped=dropped, n=n)
