"""Ground-truth suite: small models whose true circuits are known.

- ``induction``: a 2-layer attention-only transformer trained here on repeated random
  sequences (``train_induction.py``), its circuit established by ablation
  (``induction_truth.py``);
- ``tracr-reverse`` / ``tracr-proportion``: Tracr-compiled RASP programs ported to torch
  (``build_tracr.py``, run in a separate venv with jax), true edges from which residual
  subspaces each component reads and writes.

``load(name)`` returns a :class:`~interpbench.groundtruth.loader.GroundTruth`. Importing this
package is cheap (no torch work until ``load``); the runtime needs torch + safetensors only.
"""

from __future__ import annotations

__all__ = ["load", "NAMES", "GroundTruth", "GroundTruthTask"]


def __getattr__(name):
    if name in __all__:
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'interpbench.groundtruth' has no attribute {name!r}")
