"""Intervention scorer: does steering the latent push the model's output toward the words of
the explanation? (In the spirit of Paulo et al.'s intervention scoring.)

1. ``E``: the explanation's content words (letters/digits, stop-words dropped, quoted
   tokens kept); token set ``T(E)`` = first token of each word with and without a leading space.
2. For each neutral prompt ``x`` (:data:`PROMPTS`, one right-padded batch): next-token
   distribution at the last real position, clean ``p`` and steered ``p'`` — the latent's steering vector ``v`` (one-hot for
   neurons, ``W_dec[f]`` for SAEs) added at its site on every position with coefficient
   ``coeff · max_act``: ``Interventions.Add(v, coeff·max_act)``.
3. ``Δ(x) = log Σ_{t∈T(E)} p'(t) − log Σ_{t∈T(E)} p(t)``; ``score = mean_x Δ(x)`` (nats; >0 means
   steering makes the explanation's words likelier).
4. Controls: the random explanation's words under the same steering, and the explanation's
   words under steering of a *different* latent of the same source (the shuffled latent).
"""

from __future__ import annotations

import re
import threading

import numpy as np
import torch

from ...interventions import Add
from .base import Judged, Scorer, ScorerError

PROMPTS = ("The", "I think that", "In the morning", "My favourite thing is", "It was")
STOP = {"the", "a", "an", "of", "and", "or", "to", "in", "on", "for", "with", "words", "word", "tokens", "token",
        "like", "such", "as", "that", "is", "are", "text", "promotes", "about", "related", "right", "after"}


def explanation_token_ids(tokenizer, text: str) -> list[int]:
    words = re.findall(r'"([^"]+)"', text) + [w for w in re.findall(r"[A-Za-z0-9]+", text) if w.lower() not in STOP]
    ids = set()
    for w in words:
        for v in (w, " " + w):
            t = tokenizer(v, add_special_tokens=False)["input_ids"]
            if t:
                ids.add(t[0])
    return sorted(ids)


class InterventionScorer(Scorer):
    name = "intervention"

    def __init__(self, source, lock: threading.Lock = None, coeff: float = 4.0, seed: int = 0):
        if source.steer_vector(0) is None:
            raise ScorerError(f"{source.name} has no steering direction; drop the intervention scorer")
        self.source, self.coeff, self.seed = source, coeff, seed
        self.lock = lock or threading.Lock()
        self._clean = None
        self._memo: dict = {}

    @property
    def model_name(self) -> str:
        return self.source.model.cfg.name

    @torch.no_grad()
    def _logprobs(self, feature=None, coeff: float = 0.0) -> torch.Tensor:
        """``[prompt vocab]`` last-position log-probs, all prompts in one right-padded forward.

        Right padding keeps every real token's position and (causal attention) its logits exact.
        """
        key = (feature, coeff)
        if key in self._memo:
            return self._memo[key]
        m = self.source.model
        lengths = [m.to_tokens(x).shape[1] for x in PROMPTS]
        toks = m.to_tokens(list(PROMPTS), padding_side="right")  # [prompt pos]
        site = getattr(self.source, "steer_site", self.source.site)
        with self.lock:
            if feature is None:
                logits = m(toks)
            else:
                logits = m.run_with_interventions(toks, {site: Add(self.source.steer_vector(feature), coeff)})
        last = logits[torch.arange(len(PROMPTS)), torch.tensor(lengths) - 1]  # [prompt vocab]
        out = last.float().log_softmax(-1)
        self._memo = {key: out} if feature is not None else self._memo  # keep the latest steering only
        return out

    def _delta(self, text: str, steered: torch.Tensor) -> list:
        ids = explanation_token_ids(self.source.model.tokenizer, text)
        if not ids:
            return [None] * len(PROMPTS)
        if self._clean is None:
            self._clean = self._logprobs()
        d = steered[:, ids].logsumexp(-1) - self._clean[:, ids].logsumexp(-1)  # [prompt]
        return d.tolist()

    def judge(self, text: str, ex, feature=None) -> Judged:
        steered = self._logprobs(ex.feature if feature is None else feature, self.coeff * ex.max_act)
        return Judged([1] * len(PROMPTS), self._delta(text, steered))

    def metrics(self, targets, preds) -> dict:
        s = float(np.mean(preds))
        return {"score": s, "delta_logprob": s}

    def shuffled_metrics(self, real, ex, seed, text):
        rng = np.random.default_rng([seed, ex.feature, 13])
        other = int((ex.feature + 1 + rng.integers(self.source.n_latents - 1)) % self.source.n_latents)
        j = self.judge(text, ex, feature=other)
        t, p = j.kept()
        return {**self.metrics(t, p), "latent": other} if p else {"score": None, "latent": other}
