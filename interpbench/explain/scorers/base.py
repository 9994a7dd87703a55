"""Scorer plumbing: the result record, the controls, the registry.

Every scorer implements ``judge(text, examples) -> Judged`` (predictions for one
explanation) and ``metrics(targets, predictions) -> dict`` (pure; ``score`` is the headline).
:meth:`Scorer.score` then reports, side by side:

1. the explanation's metrics;
2. **random explanation** control: ``judge`` on a description drawn (seeded by the feature)
   from :data:`RANDOM_EXPLANATIONS`, never equal to the explanation;
3. **shuffled latent** control: the explanation's own predictions against targets permuted
   at random (a latent with the same activation statistics but no link to the text).

An example whose judge answer does not parse is dropped from the metrics and counted in
``parse_failures`` — never replaced by a default answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from ...errors import InterpbenchError
from ..metrics import nan_to_none

RANDOM_EXPLANATIONS = (
    "words about cooking and food", "names of sports teams", "legal terminology", "colours",
    "verbs in the past tense", "references to the weather", "musical instruments", "chemical elements",
    "emotions and feelings", "parts of the human body", "computer programming keywords", "animals",
    "days of the week and months", "family members", "religious terms", "vehicles and transport",
    "question words like who and why", "plural nouns", "adverbs ending in -ly", "units of measurement",
)
"""Pool the random-explanation control draws from."""


class ScorerError(InterpbenchError):
    """A scorer that cannot run on this source or these examples."""


@dataclass
class Judged:
    """A judge's predictions for one explanation."""

    targets: list
    """Ground truth per scored item (0/1 labels, or activations for simulation)."""
    preds: list
    """Prediction per scored item (None where the answer did not parse)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def parse_failures(self) -> int:
        return sum(p is None for p in self.preds)

    def kept(self) -> tuple[list, list]:
        keep = [i for i, p in enumerate(self.preds) if p is not None]
        return [self.targets[i] for i in keep], [self.preds[i] for i in keep]


@dataclass(frozen=True)
class ScoreResult:
    """One scorer's verdict on one explanation of one latent, with its chance-level controls."""

    scorer: str
    """Scorer name."""
    model: str
    """Judge / simulator / encoder / steered model that produced the predictions."""
    score: Optional[float]
    """Headline metric of the explanation (None when no prediction parsed)."""
    metrics: dict
    """All metrics of the explanation."""
    random_explanation: dict
    """Metrics of the random-explanation control (``score`` included)."""
    random_explanation_text: str
    """The random explanation used."""
    shuffled_latent: dict
    """Metrics of the shuffled-latent control."""
    n_pos: int
    """Activating examples scored."""
    n_neg: int
    """Non-activating examples scored."""
    n_items: int
    """Items behind the metric (examples, or pooled tokens for simulation)."""
    parse_failures: int = 0
    """Unparseable judge answers (explanation + random control), dropped, not coerced."""
    prompt_tokens: int = 0
    """LLM prompt tokens spent (explanation + random control)."""
    completion_tokens: int = 0
    """LLM completion tokens spent."""
    schema_version: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ScoreResult":
        return cls(**d)


def random_explanation(feature: int, seed: int, avoid: str) -> str:
    rng = np.random.default_rng([seed, feature, 7])
    pool = [e for e in RANDOM_EXPLANATIONS if e.lower() != avoid.strip().lower()]
    return pool[int(rng.integers(len(pool)))]


def _clean(d: dict) -> dict:
    return {k: nan_to_none(float(v)) if v is not None else None for k, v in d.items()}


class Scorer:
    """Base class: subclasses set ``name`` and implement ``judge``/``metrics``/``model_name``."""

    name = "base"

    def judge(self, text: str, ex) -> Judged:  # pragma: no cover - abstract
        raise NotImplementedError

    def metrics(self, targets: list, preds: list) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def model_name(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def shuffled_metrics(self, real: Judged, ex, seed: int, text: str) -> dict:
        t, p = real.kept()
        perm = np.random.default_rng([seed, ex.feature, 11]).permutation(len(t))
        return self.metrics([t[i] for i in perm], p) if t else {"score": None}

    def score(self, text: str, ex, seed: int = 0) -> ScoreResult:
        real = self.judge(text, ex)
        rtext = random_explanation(ex.feature, seed, text)
        rand = self.judge(rtext, ex)
        m = self.metrics(*real.kept()) if real.kept()[0] else {"score": None}
        rm = self.metrics(*rand.kept()) if rand.kept()[0] else {"score": None}
        sm = self.shuffled_metrics(real, ex, seed, text)
        return ScoreResult(self.name, self.model_name, nan_to_none(m.get("score")), _clean(m), _clean(rm), rtext,
                           _clean(sm), len(ex.score_pos), len(ex.score_neg), len(real.kept()[0]),
                           real.parse_failures + rand.parse_failures, real.prompt_tokens + rand.prompt_tokens,
                           real.completion_tokens + rand.completion_tokens)
