"""Synthetic ground truth: activations built from a known dictionary, and how well an SAE finds it.

1. Dictionary: ``n_features`` random unit vectors in ``d`` dimensions (rows of ``D``).
2. Codes: each sample switches on exactly ``k`` features chosen uniformly (the true
   sparsity) with magnitudes ``U(0.5, 1.5)``; ``x = codes @ D + noise·N(0, 1/d)``.
3. Score (:func:`mean_max_cosine`): for each true feature, the largest cosine similarity
   with any learned decoder row, averaged over features (1.0 = every feature recovered).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class SyntheticData:
    """Activations and the dictionary they were built from."""

    acts: Tensor
    """Samples ``[n d]``."""
    dictionary: Tensor
    """True feature directions ``[n_features d]`` (unit rows)."""
    codes: Tensor
    """True sparse codes ``[n n_features]``."""


def make_synthetic(n: int = 50_000, d: int = 64, n_features: int = 128, k: int = 4, noise: float = 0.01,
                   seed: int = 0) -> SyntheticData:
    """Draw ``n`` samples with exactly ``k`` of ``n_features`` known features active."""
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(n_features, d, generator=g)
    D /= D.norm(dim=-1, keepdim=True)
    idx = torch.rand(n, n_features, generator=g).topk(k, dim=-1).indices  # k distinct features per row
    mags = 0.5 + torch.rand(n, k, generator=g)
    codes = torch.zeros(n, n_features).scatter_(-1, idx, mags)
    x = codes @ D + noise * torch.randn(n, d, generator=g) / d ** 0.5
    return SyntheticData(x, D, codes)


def mean_max_cosine(true_dirs: Tensor, learned_dirs: Tensor) -> float:
    """Mean over true rows of the max cosine similarity with any learned row (pure)."""
    true_dirs, learned_dirs = true_dirs.detach().float(), learned_dirs.detach().float()
    a = true_dirs / true_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = learned_dirs / learned_dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return float((a @ b.T).max(dim=-1).values.mean())


__all__ = ["make_synthetic", "mean_max_cosine", "SyntheticData"]
