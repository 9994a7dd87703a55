"""Automated explanations and scoring of latents (SAE features, neurons, synthetic latents).

Pipeline (each stage recorded in a resumable SQLite ledger, see :mod:`.ledger`):

1. **harvest** (:mod:`.harvest`): run the model over corpus windows once and keep the
   activations of the selected latents (:mod:`.sources` turns model activations into latent
   activations).
2. **examples** (:mod:`.examples`): per latent, top activations, quantile examples and random
   non-activating contexts; explanation and scoring sets from *disjoint documents*.
3. **explain** (:mod:`.explainers`): an LLM explainer (local SmolLM2 or any OpenAI-compatible
   endpoint, :mod:`.clients`) or the non-LLM baselines (top tokens, logit lens).
4. **score** (:mod:`.scorers`): detection, fuzzing, simulation, embedding, intervention, each
   next to the same scorer on a random explanation and on a shuffled latent.

Entry points: :func:`interpbench.explain.job.run_job` and ``interpbench label ...``.
"""

from __future__ import annotations

__all__ = ["LabelConfig", "run_job", "run_recipe"]


def __getattr__(name):  # lazy: importing the package stays cheap
    if name == "LabelConfig":
        from .config import LabelConfig

        return LabelConfig
    if name == "run_job":
        from .job import run_job

        return run_job
    if name == "run_recipe":
        from .recipe import run_recipe

        return run_recipe
    raise AttributeError(f"module 'interpbench.explain' has no attribute {name!r}")
