"""Simulation scorer (Bills et al. 2023, "Language models can explain neurons in language
models"), "all at once" variant.

1. Targets: for every token of every scoring window (activating and non-activating),
   ``y = 10·max(a, 0)/max_act`` (the latent's activation on a 0-10 scale).
2. The simulator sees the explanation and writes one line per token, ``token = v``.
   Local model: the lines are laid out in one sequence with a placeholder digit ``0`` in
   every slot, one forward pass reads the next-token distribution over the digit tokens
   ``0..9`` at each slot, and the prediction is ``ŷ = (10/9)·Σ_d d·p(d)`` (the expected
   activation). HTTP backends generate the lines; ``v`` is parsed per token (a window whose
   lines do not parse is retried once with sampling, then dropped and counted).
3. ``score = Pearson(y, ŷ)`` over all scored tokens pooled across windows.
"""

from __future__ import annotations

import re

from ..metrics import pearson
from .base import Judged, Scorer

SIM_SYSTEM = ("You predict how strongly a neuron activates on each token of a text, from 0 (not at all) "
              "to 9 (maximally), given a description of what the neuron responds to.")


def _show(tok: str) -> str:
    return tok.replace("\n", "\\n").strip() or repr(tok)


class SimulationScorer(Scorer):
    name = "simulation"

    def __init__(self, client, seed: int = 0):
        self.client, self.seed = client, seed

    @property
    def model_name(self) -> str:
        return self.client.name

    def _messages(self, text: str, r) -> list:
        toks = " ".join(_show(t) for t in r.tokens)
        return [{"role": "system", "content": SIM_SYSTEM},
                {"role": "user", "content": f"Description: {text}\nTokens: {toks}\n"
                                            f"Write one line per token: token = activation (0-9)."}]

    def _local(self, text: str, r) -> tuple[list, int]:
        tok = self.client.tok
        ids = self.client.render(self._messages(text, r))
        digits = [tok("0123456789"[d], add_special_tokens=False)["input_ids"][0] for d in range(10)]
        slots = []
        for t in r.tokens:
            ids += tok(f"{_show(t)} =", add_special_tokens=False)["input_ids"]
            slots.append(len(ids) - 1)
            ids += [digits[0]] + tok("\n", add_special_tokens=False)["input_ids"]
        probs = self.client.position_probs(ids, slots, digits)  # [n_tok 10]
        ev = (probs * __import__("torch").arange(10.0)).sum(-1) * (10.0 / 9.0)  # [n_tok]
        return ev.tolist(), len(ids)

    def _http(self, text: str, r) -> tuple[list, int, int]:
        p = c = 0
        for attempt in range(2):
            comp = self.client.complete(self._messages(text, r), max_tokens=8 * len(r.tokens),
                                        temperature=0.0 if attempt == 0 else 0.7, seed=self.seed + attempt)
            p, c = p + comp.prompt_tokens, c + comp.completion_tokens
            vals = [int(v) for v in re.findall(r"=\s*(\d+)", comp.text)]
            if len(vals) == len(r.tokens):
                return [min(v, 9) * 10.0 / 9.0 for v in vals], p, c
        return [None] * len(r.tokens), p, c

    def judge(self, text: str, ex) -> Judged:
        targets, preds = [], []
        p = c = 0
        for r in ex.score_pos + ex.score_neg:
            targets += [10.0 * max(a, 0.0) / ex.max_act for a in r.acts]
            if hasattr(self.client, "position_probs"):
                vals, n = self._local(text, r)
                p += n
            else:
                vals, dp, dc = self._http(text, r)
                p, c = p + dp, c + dc
            preds += vals
        return Judged(targets, preds, p, c)

    def metrics(self, targets, preds) -> dict:
        r = pearson(targets, preds)
        return {"score": r, "pearson": r}
