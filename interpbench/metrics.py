"""Metrics: pure functions on logits (no model access, no I/O) and bootstrap CIs.

1. Per-prompt metrics on logits ``[batch pos d_vocab]`` at one position (default the last):
   :func:`logit_diff`, :func:`answer_prob`, :func:`answer_logprob`, :func:`kl_to_clean`,
   :func:`answer_loss`. Each returns ``[batch]`` (one value per prompt).
2. :func:`normalized` maps a metric value to (patched − corrupted)/(clean − corrupted),
   so 0 = corrupted behaviour, 1 = clean behaviour. How it is pooled over prompts is the
   ``aggregate`` convention: ``mean_of_differences`` averages per-prompt normalised values;
   ``difference_of_means`` normalises the prompt means.
3. :func:`mean_ci`: mean and percentile bootstrap confidence interval over prompts.
4. :class:`MetricSpec` is the frozen record of which metric and which conventions
   (direction noising/denoising, aggregate, position) made a number; results carry it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import torch
from jaxtyping import Float, Int
from torch import Tensor

from .errors import InterpbenchError, ShapeError

SCHEMA_VERSION = 1
METRIC_NAMES = ("logit_diff", "prob", "logprob", "kl", "loss")
DIRECTIONS = ("denoise", "noise")
AGGREGATES = ("mean_of_differences", "difference_of_means")


def _at(logits: Tensor, pos: int) -> Float[Tensor, "batch d_vocab"]:
    if logits.ndim == 2:  # already [batch d_vocab]
        return logits
    if logits.ndim != 3:
        raise ShapeError(f"logits must be [batch pos d_vocab] or [batch d_vocab], got {tuple(logits.shape)}")
    return logits[:, pos]


def _ids(ids, logits: Tensor) -> Int[Tensor, "batch"]:
    ids = torch.as_tensor(ids, device=logits.device, dtype=torch.long)
    if ids.ndim == 0:
        ids = ids.expand(logits.shape[0])
    if ids.shape[0] != logits.shape[0]:
        raise ShapeError(f"{ids.shape[0]} answer ids for a batch of {logits.shape[0]} prompts")
    return ids


def logit_diff(logits: Tensor, answer, wrong, pos: int = -1) -> Float[Tensor, "batch"]:
    """``logit[answer] - logit[wrong]`` at ``pos``, per prompt."""
    x = _at(logits, pos)
    a, w = _ids(answer, x), _ids(wrong, x)
    return x.gather(-1, a[:, None])[:, 0] - x.gather(-1, w[:, None])[:, 0]


def answer_logprob(logits: Tensor, answer, pos: int = -1) -> Float[Tensor, "batch"]:
    """``log p(answer)`` at ``pos``, per prompt."""
    x = _at(logits, pos).float().log_softmax(-1)
    return x.gather(-1, _ids(answer, x)[:, None])[:, 0]


def answer_prob(logits: Tensor, answer, pos: int = -1) -> Float[Tensor, "batch"]:
    """``p(answer)`` at ``pos``, per prompt."""
    return answer_logprob(logits, answer, pos).exp()


def answer_loss(logits: Tensor, answer, pos: int = -1) -> Float[Tensor, "batch"]:
    """Cross-entropy of the answer token at ``pos`` (``-log p(answer)``), per prompt."""
    return -answer_logprob(logits, answer, pos)


def kl_to_clean(logits: Tensor, clean_logits: Tensor, pos: int = -1) -> Float[Tensor, "batch"]:
    """``KL(p_clean || p)`` at ``pos``, per prompt (0 when the run matches the clean run)."""
    lp = _at(logits, pos).float().log_softmax(-1)
    lq = _at(clean_logits, pos).float().log_softmax(-1)
    return (lq.exp() * (lq - lp)).sum(-1)


def normalized(patched: Tensor, clean: Tensor, corrupted: Tensor,
               aggregate: str = "mean_of_differences", dim: int = -1) -> Tensor:
    """(patched − corrupted)/(clean − corrupted), pooled over prompts along ``dim``.

    ``mean_of_differences``: mean over prompts of per-prompt normalised values;
    ``difference_of_means``: normalise the prompt means. ``clean``/``corrupted`` are per
    prompt ``[batch]`` and broadcast against ``patched`` (``[..., batch]`` along ``dim``).
    """
    if aggregate == "mean_of_differences":
        return ((patched - corrupted) / (clean - corrupted)).mean(dim)
    if aggregate == "difference_of_means":
        c, k = corrupted.mean(-1), clean.mean(-1)
        return (patched.mean(dim) - c) / (k - c)
    raise InterpbenchError(f"unknown aggregate {aggregate!r}; use one of {AGGREGATES}")


@dataclass(frozen=True)
class CI:
    """A mean with a bootstrap confidence interval."""

    mean: float
    """Mean over prompts."""
    lo: float
    """Lower bound of the interval."""
    hi: float
    """Upper bound of the interval."""
    level: float
    """Coverage, e.g. 0.95."""
    n: int
    """Number of prompts."""
    n_boot: int
    """Bootstrap resamples."""

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_means(values: Tensor, n_boot: int = 1000, seed: int = 0) -> Float[Tensor, "n_boot ..."]:
    """Means of ``n_boot`` resamples (with replacement) along the last axis ``[..., batch]``."""
    values = torch.as_tensor(values)
    n = values.shape[-1]
    if n == 0:
        raise InterpbenchError("cannot bootstrap zero values")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, n, (n_boot, n), generator=g).to(values.device)  # [n_boot batch]
    return values[..., idx].mean(-1).movedim(-1, 0)  # [..., n_boot, batch] -> [n_boot, ...]


def mean_ci(values, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> CI:
    """Mean of a 1-D set of per-prompt values with a percentile bootstrap CI (seeded)."""
    v = torch.as_tensor(values).detach().double().flatten()
    boots = bootstrap_means(v, n_boot, seed)
    a = (1 - level) / 2
    q = torch.quantile(boots, torch.tensor([a, 1 - a], dtype=boots.dtype, device=boots.device))
    return CI(float(v.mean()), float(q[0]), float(q[1]), level, int(v.numel()), n_boot)


def mean_ci_tensor(values: Tensor, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[Tensor, Tensor, Tensor]:
    """Vectorised :func:`mean_ci` over leading axes: ``values [..., batch]`` -> (mean, lo, hi) each ``[...]``."""
    boots = bootstrap_means(values.double(), n_boot, seed)  # [n_boot, ...]
    a = (1 - level) / 2
    q = torch.quantile(boots, torch.tensor([a, 1 - a], dtype=boots.dtype, device=boots.device), dim=0)
    return values.double().mean(-1), q[0], q[1]


@dataclass(frozen=True)
class MetricSpec:
    """Which metric and which conventions made a number (written into every result)."""

    name: str
    """``logit_diff``, ``prob``, ``logprob``, ``kl``, ``loss`` or ``custom:<description>``."""
    direction: str = "denoise"
    """``denoise``: clean activations patched into the corrupted run; ``noise``: the reverse."""
    aggregate: str = "mean_of_differences"
    """How per-prompt values pool into one number for normalised scores (see :func:`normalized`)."""
    pos: int = -1
    """Position at which the logits are read."""
    normalized: bool = False
    """True when values are (patched − corrupted)/(clean − corrupted)."""
    schema_version: int = SCHEMA_VERSION
    """Record schema version."""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise InterpbenchError(f"unknown direction {self.direction!r}; use 'denoise' or 'noise'")
        if self.aggregate not in AGGREGATES:
            raise InterpbenchError(f"unknown aggregate {self.aggregate!r}; use one of {AGGREGATES}")
        if not (self.name in METRIC_NAMES or self.name.startswith("custom")):
            raise InterpbenchError(f"unknown metric {self.name!r}; use one of {METRIC_NAMES} or a callable")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MetricSpec":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def per_prompt(name: str, logits: Tensor, answer=None, wrong=None, clean_logits: Optional[Tensor] = None,
               pos: int = -1) -> Float[Tensor, "batch"]:
    """Dispatch a named metric to its pure function (per prompt)."""
    if name == "logit_diff":
        if answer is None or wrong is None:
            raise InterpbenchError("metric 'logit_diff' needs answer and wrong token ids")
        return logit_diff(logits, answer, wrong, pos)
    if name in ("prob", "logprob", "loss"):
        if answer is None:
            raise InterpbenchError(f"metric {name!r} needs answer token ids")
        return {"prob": answer_prob, "logprob": answer_logprob, "loss": answer_loss}[name](logits, answer, pos)
    if name == "kl":
        if clean_logits is None:
            raise InterpbenchError("metric 'kl' needs the clean run's logits")
        return kl_to_clean(logits, clean_logits, pos)
    raise InterpbenchError(f"unknown metric {name!r}; use one of {METRIC_NAMES}")
