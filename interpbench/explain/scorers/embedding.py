"""Embedding scorer (Paulo et al. 2024): can a sentence encoder find the activating windows
from the explanation alone?

1. Encode the explanation ``q`` and every scoring window's text ``d_i`` with the bundled
   MiniLM (``load_model("minilm-l6")``): mean of the last hidden states over non-padding
   tokens, L2-normalised.
2. ``s_i = cos(q, d_i)``; labels: 1 for activating windows, 0 for non-activating ones.
3. ``score = AUROC(labels, s)``. No LLM tokens are spent.
"""

from __future__ import annotations

import threading

import torch

from ..metrics import auroc
from .base import Judged, Scorer
from .detection import plain

_LOCK = threading.Lock()
_ENCODERS: dict = {}


def encoder(spec: str = "minilm-l6"):
    with _LOCK:
        if spec not in _ENCODERS:
            from ...models.loading import load_model

            _ENCODERS[spec] = load_model(spec, device="cpu")
        return _ENCODERS[spec]


@torch.no_grad()
def embed(texts: list[str], spec: str = "minilm-l6") -> torch.Tensor:
    """``[n d]`` L2-normalised mean-pooled embeddings."""
    m = encoder(spec)
    batch = m.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with _LOCK:
        h = m.hf(**batch).last_hidden_state  # [n pos d]
    mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)  # [n pos 1]
    v = (h * mask).sum(1) / mask.sum(1).clamp(min=1)  # [n d]
    return torch.nn.functional.normalize(v, dim=-1)


class EmbeddingScorer(Scorer):
    name = "embedding"

    def __init__(self, spec: str = "minilm-l6"):
        self.spec = spec
        self._cache: dict = {}

    @property
    def model_name(self) -> str:
        return self.spec

    def _docs(self, docs: list[str]) -> torch.Tensor:
        key = tuple(docs)
        with _LOCK:
            hit = self._cache.get(key)
        if hit is None:
            hit = embed(docs, self.spec)
            with _LOCK:
                self._cache = {key: hit}  # the last example set: real and control explanations share it
        return hit

    def judge(self, text: str, ex) -> Judged:
        docs = self._docs([plain(r) for r in ex.score_pos + ex.score_neg])  # [n d]
        sims = (docs @ embed([text], self.spec)[0]).tolist()
        return Judged([1] * len(ex.score_pos) + [0] * len(ex.score_neg), sims)

    def metrics(self, targets, preds) -> dict:
        a = auroc(targets, preds)
        return {"score": a, "auroc": a}
