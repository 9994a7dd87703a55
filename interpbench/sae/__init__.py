"""Sparse autoencoders: architectures, activation store, trainer, evaluation, formats, splicing.

Public names (lazy, so importing is cheap):

- ``load(dir)`` -> :class:`SAE` with ``.encode(x)``, ``.decode(z)``, ``.W_dec`` [d_sae d_in], ``.cfg``
  (reads interpbench, SAELens and sparsify folders); ``save(sae, dir, format=...)``.
- ``SAE``, ``SAEConfig``, ``TrainConfig``, ``ARCHS`` (architecture registry).
- ``Trainer`` / ``train.train(sae_cfg, train_cfg, source, out=...)`` (:mod:`interpbench.sae.train`).
- ``harvest(model, site, docs, ...)`` -> ``Harvest(acts, targets, tokens, where)`` (:mod:`interpbench.sae.store`);
  documents come from :func:`interpbench.corpus.load_corpus`.
- ``evaluate.evaluate(...)`` / ``evaluate.top_examples(...)`` (:mod:`interpbench.sae.evaluate`),
  ``SAESplice`` (:mod:`interpbench.sae.intervene`).
- Jobs behind the CLI and recipes: :mod:`interpbench.sae.pipeline` (``run_train``, ``run_eval``).
"""

from __future__ import annotations

import importlib

_NAMES = {
    "detect_format": "formats",
    "SAE": "arch", "ARCHS": "arch",
    "SAEConfig": "config", "TrainConfig": "config",
    "Trainer": "train", "TrainingDiverged": "train",
    "harvest": "store", "cache_activations": "store", "load_activations": "store", "TensorSource": "store",
    "EvalResult": "evaluate", "SAESplice": "intervene",
}

__all__ = sorted([*_NAMES, "load", "save"])


# ``load`` and ``save`` are real functions, not lazy attributes: nnsight (0.8) installs a
# ``save`` method on every object once a trace has run, which would shadow a lazy ``save``.
def load(path, *args, **kwargs):
    """Load an SAE folder (interpbench, SAELens or sparsify layout); see :func:`interpbench.sae.formats.load`."""
    from .formats import load as _load

    return _load(path, *args, **kwargs)


def save(sae, out, *args, **kwargs):
    """Save an SAE folder; see :func:`interpbench.sae.formats.save`."""
    from .formats import save as _save

    return _save(sae, out, *args, **kwargs)


def __getattr__(name):
    if name in _NAMES:
        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'interpbench.sae' has no attribute {name!r}")
