"""Scorers of explanations, by name (a registry shared by the CLI, recipes and the app).

Each module's docstring gives its formula. Every result carries the random-explanation and
shuffled-latent controls (see :mod:`.base`).
"""

from __future__ import annotations

from .base import RANDOM_EXPLANATIONS, ScoreResult, Scorer, ScorerError

SCORERS = {
    "detection": "interpbench.explain.scorers.detection:DetectionScorer",
    "fuzzing": "interpbench.explain.scorers.detection:FuzzingScorer",
    "simulation": "interpbench.explain.scorers.simulation:SimulationScorer",
    "embedding": "interpbench.explain.scorers.embedding:EmbeddingScorer",
    "intervention": "interpbench.explain.scorers.intervention:InterventionScorer",
}
"""Scorer name → ``module:class``. Duplicate names are impossible by construction."""

LLM_SCORERS = ("detection", "fuzzing", "simulation")


def build_scorer(name: str, *, client=None, source=None, lock=None, seed: int = 0) -> Scorer:
    import importlib

    if name not in SCORERS:
        raise ScorerError(f"unknown scorer {name!r}; choose from {', '.join(SCORERS)}")
    mod, cls = SCORERS[name].split(":")
    klass = getattr(importlib.import_module(mod), cls)
    if name in LLM_SCORERS:
        return klass(client, seed=seed)
    if name == "intervention":
        return klass(source, lock=lock, seed=seed)
    return klass()


__all__ = ["SCORERS", "LLM_SCORERS", "build_scorer", "ScoreResult", "Scorer", "ScorerError", "RANDOM_EXPLANATIONS"]
