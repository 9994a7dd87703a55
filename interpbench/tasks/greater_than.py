"""Greater-than (Hanna et al. 2023): "The war lasted from the year 17YY to the year 17".

1. Draw a noun and a start year 17YY with tens digit in 2..8 (so tens±1 are digits).
2. Corrupted prompt: the same with year 1701 ("YY01" corruption), which gives the model
   no information about which end years are larger.
3. Answer / wrong must be single tokens. If this tokenizer has a single two-digit token
   for the continuation (GPT-2 style), answer = "{tens+1}{units}" (a later year) and
   wrong = "{tens-1}{units}" (an earlier year). If it tokenises digits one by one
   (SmolLM2, Llama-3 style), the next token is the end year's tens digit: answer =
   digit tens+1, wrong = digit tens-1. ``meta['formulation']`` says which was used.
4. Pairs whose clean and corrupted years tokenise to different lengths are dropped and
   reported (build_pairs).
"""

from __future__ import annotations

import random

from ._build import build_pairs, single_token
from .registry import register_task

NOUNS = ("war", "expedition", "drought", "siege", "famine", "reign", "dynasty", "occupation", "conflict", "strike",
         "rebellion", "voyage", "crisis", "pilgrimage", "journey", "campaign", "plague", "truce")
TEMPLATE = "The {noun} lasted from the year 17{yy} to the year 17"


def formulation(tokenizer) -> str:
    """``two_digit`` if "17" + two digits continues with one token (checked on '32'), else ``digit``."""
    base = tokenizer(TEMPLATE.format(noun="war", yy="32"), add_special_tokens=False)["input_ids"]
    full = tokenizer(TEMPLATE.format(noun="war", yy="32") + "45", add_special_tokens=False)["input_ids"]
    if len(full) == len(base) + 1 and full[:len(base)] == base:
        return "two_digit"
    return "digit"


@register_task("greater_than")
def greater_than(model, n: int = 16, seed: int = 0, *, prepend_bos: bool = True):
    """Greater-than prompt pairs with YY01 corruption (see the module docstring)."""
    rng = random.Random(seed)
    form = formulation(model.tokenizer)
    rows = []
    for i in range(3 * n):
        noun = rng.choice(NOUNS)
        tens, units = rng.randint(2, 8), rng.randint(0, 9)
        yy = f"{tens}{units}"
        if form == "two_digit":
            ans, wrong = f"{tens + 1}{units}", f"{tens - 1}{units}"
        else:
            ans, wrong = str(tens + 1), str(tens - 1)
        rows.append((f"{noun} 17{yy}", TEMPLATE.format(noun=noun, yy=yy), TEMPLATE.format(noun=noun, yy="01"),
                     ans, wrong))
    dropped = []
    if single_token(model.tokenizer, "5") is None:
        dropped.append("digit '5' is not a single token for this tokenizer")
    meta = {"seed": seed, "n": n, "formulation": form, "corruption": "YY01"}
    return build_pairs(model, "greater_than", rows, prepend_bos=prepend_bos, meta=meta, dropped=dropped, n=n)
