"""Gender-bias prompts for causal mediation analysis (Vig et al. 2020, "Investigating
Gender Bias in Language Models Using Causal Mediation Analysis").

1. Fill each of Vig et al.'s templates ("The {} said that", ...) with each profession of
   :data:`PROFESSIONS` (a curated list with the gender the profession is stereotypically
   associated with). This is the *null* prompt (``clean``).
2. The *set-gender* intervention replaces the profession by an explicitly gendered word
   of the anti-stereotypical gender (Vig et al.): "The nurse said that" → "The man said
   that", "The mechanic said that" → "The woman said that" (``corrupted``).
3. ``answer`` = the anti-stereotypical pronoun (" he" for a female-stereotyped profession),
   ``wrong`` = the stereotypical one, so ``logit_diff = log p(anti) - log p(stereo)`` and
   Vig's ``y = p(anti)/p(stereo) = exp(logit_diff)``.
4. Professions that are not a single token (leading space included) are dropped and
   reported, so the swap never changes the prompt length; pairs then go through
   :func:`interpbench.tasks._build.build_pairs` (the modal prompt length is kept, others
   are reported as dropped).
"""

from __future__ import annotations

import random
from typing import Optional, Sequence

from ._build import build_pairs, single_token
from .registry import register_task

TEMPLATES: tuple[str, ...] = (
    "The {} said that", "The {} yelled that", "The {} whispered that", "The {} wanted that",
    "The {} desired that", "The {} wished that", "The {} ate because", "The {} ran because",
    "The {} drove because", "The {} slept because", "The {} cried because", "The {} laughed because",
    "The {} went home because", "The {} stayed up because", "The {} was fired because",
    "The {} was promoted because", "The {} yelled because",
)
"""Vig et al. (2020) templates; ``{}`` is the profession (or the set-gender word)."""

PROFESSIONS: tuple[tuple[str, str], ...] = (
    ("nurse", "female"), ("secretary", "female"), ("receptionist", "female"), ("librarian", "female"),
    ("housekeeper", "female"), ("hairdresser", "female"), ("nanny", "female"), ("dancer", "female"),
    ("maid", "female"), ("cashier", "female"), ("stylist", "female"), ("teacher", "female"),
    ("designer", "female"), ("singer", "female"), ("baker", "female"),
    ("carpenter", "male"), ("mechanic", "male"), ("engineer", "male"), ("soldier", "male"), ("pilot", "male"),
    ("firefighter", "male"), ("plumber", "male"), ("surgeon", "male"), ("banker", "male"), ("farmer", "male"),
    ("lawyer", "male"), ("janitor", "male"), ("sheriff", "male"), ("guard", "male"), ("driver", "male"),
    ("manager", "male"), ("programmer", "male"), ("architect", "male"), ("boss", "male"), ("physician", "male"),
)
"""``(profession, stereotypical gender)``, curated after the occupation lists of Bolukbasi
et al. 2016 / Vig et al. 2020 (a binary label, not their crowd-sourced scores)."""

PRONOUN = {"male": " he", "female": " she"}
SET_GENDER_WORD = {"male": " man", "female": " woman"}  # word of that gender used by set-gender


def usable_professions(tokenizer, professions: Sequence[tuple[str, str]] = PROFESSIONS):
    """(single-token professions, dropped with reasons)."""
    ok, dropped = [], []
    for prof, g in professions:
        n = len(tokenizer(" " + prof, add_special_tokens=False)["input_ids"])
        if n == 1:
            ok.append((prof, g))
        else:
            dropped.append(f"profession {prof!r}: {n} tokens, not 1 (swapping it would change the length)")
    return ok, dropped


@register_task("gender")
def gender(model, n: int = 16, seed: int = 0, *, templates: Optional[Sequence[int]] = None,
           prepend_bos: bool = True):
    """Gender-bias null / set-gender pairs (see the module docstring); ``templates`` indexes :data:`TEMPLATES`."""
    tok = model.tokenizer
    profs, dropped = usable_professions(tok)
    for g, w in SET_GENDER_WORD.items():
        if single_token(tok, w) is None:
            dropped.append(f"set-gender word {w!r} is not a single token; {g}-word swaps skipped")
    tpl_ids = list(range(len(TEMPLATES))) if templates is None else [int(t) for t in templates]
    rows = []
    for t in tpl_ids:
        for prof, g in profs:
            anti = "male" if g == "female" else "female"
            clean = TEMPLATES[t].format(prof)
            corrupted = TEMPLATES[t].format(SET_GENDER_WORD[anti].strip())
            rows.append((f"template {t} / {prof}", clean, corrupted, PRONOUN[anti], PRONOUN[g]))
    random.Random(seed).shuffle(rows)
    meta = {"seed": seed, "n": n, "templates": tpl_ids, "answer": "anti-stereotypical pronoun",
            "wrong": "stereotypical pronoun", "corruption": "set-gender (anti-stereotypical gendered word)",
            "paper": "Vig et al. 2020"}
    return build_pairs(model, "gender", rows, prepend_bos=prepend_bos, meta=meta, dropped=dropped, n=n)


__all__ = ["TEMPLATES", "PROFESSIONS", "usable_professions", "gender"]
