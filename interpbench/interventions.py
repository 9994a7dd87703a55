"""Interventions: small immutable objects with one call, activation in, activation out.

Each intervention receives the *whole* activation at its site (e.g. ``[batch pos n_heads
d_head]`` for ``attn.hook_z``) and returns a tensor of the same shape. The tracing core
then keeps the result only inside the site's index (``[head=2,pos=-1]``), so every
intervention works per head and per position without knowing about indices. Compose
them by listing several for one site; they apply in order. All are differentiable:
gradients flow through the kept region and through any tensor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from .errors import ShapeError


class Intervention:
    """Base class. Subclasses are frozen dataclasses implementing ``__call__``."""

    def __call__(self, act: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Short description written into records (no tensor contents)."""
        return type(self).__name__


def _check_broadcast(source: Tensor, act: Tensor, what: str, strict_dtype: bool = False) -> Tensor:
    """Check device/shape; a dtype mismatch is an error for cached sources, a cast for vectors."""
    if source.device != act.device:
        raise ShapeError(f"{what} is on {source.device} but the activation is on {act.device}; "
                         f"move it with .to(model.device)")
    if source.dtype != act.dtype:
        if strict_dtype:
            raise ShapeError(f"{what} is {source.dtype} but the activation is {act.dtype}; a patch source must "
                             f"come from the same model and dtype (or cast it explicitly with .to({act.dtype}))")
        source = source.to(act.dtype)
    try:
        torch.broadcast_shapes(source.shape, act.shape)
    except RuntimeError:
        raise ShapeError(f"{what} has shape {tuple(source.shape)} but the activation has shape "
                         f"{tuple(act.shape)}; pass a tensor of the site's shape (see model.site_shapes)") from None
    return source


@dataclass(frozen=True, eq=False)
class Zero(Intervention):
    """Set the activation to zero (zero ablation)."""

    def __call__(self, act: Tensor) -> Tensor:
        return torch.zeros_like(act)


@dataclass(frozen=True, eq=False)
class Mean(Intervention):
    """Replace the activation by a mean (mean ablation); ``mean`` broadcasts to the site."""

    mean: Tensor
    """Mean activation, e.g. ``[d_model]`` or ``[pos d_model]`` averaged over a reference set."""

    def __call__(self, act: Tensor) -> Tensor:
        return _check_broadcast(self.mean, act, "Mean.mean", strict_dtype=True).expand_as(act)


@dataclass(frozen=True, eq=False)
class Patch(Intervention):
    """Replace the activation by a source activation (from another run's cache).

    Resample ablation is a Patch whose source comes from a run on other inputs.
    """

    source: Tensor
    """Activation of the same site from the source run, same shape (batch may broadcast)."""

    def __call__(self, act: Tensor) -> Tensor:
        return _check_broadcast(self.source, act, "Patch.source", strict_dtype=True).expand_as(act)


@dataclass(frozen=True, eq=False)
class Add(Intervention):
    """Add a vector (steering): ``act + coeff * vector``."""

    vector: Tensor
    """Direction broadcastable to the site, e.g. ``[d_model]``."""
    coeff: float = 1.0
    """Multiplier on the vector."""

    def __call__(self, act: Tensor) -> Tensor:
        return act + self.coeff * _check_broadcast(self.vector, act, "Add.vector")


@dataclass(frozen=True, eq=False)
class Scale(Intervention):
    """Multiply the activation by a factor."""

    factor: float
    """Scale factor; 0 is zero ablation, 1 is the identity."""

    def __call__(self, act: Tensor) -> Tensor:
        return act * self.factor


def _orthonormal(basis: Tensor) -> Tensor:
    """Orthonormal rows spanning ``basis`` ([k d] or [d])."""
    basis = basis.reshape(-1, basis.shape[-1]) if basis.ndim > 1 else basis[None]
    q, _ = torch.linalg.qr(basis.T.float())  # q: [d k]
    return q.T.to(basis.dtype)  # [k d]


def _basis_for(basis: Tensor, act: Tensor, what: str) -> Tensor:
    if basis.shape[-1] != act.shape[-1]:
        raise ShapeError(f"{what} has width {basis.shape[-1]} but the activation's last axis is "
                         f"{act.shape[-1]}; give a basis of shape [k, {act.shape[-1]}]")
    if basis.device != act.device:
        raise ShapeError(f"{what} is on {basis.device} but the activation is on {act.device}")
    return basis.to(act.dtype)


@dataclass(frozen=True, eq=False)
class ProjectOut(Intervention):
    """Remove the component of the activation in a subspace: ``x - P x``."""

    basis: Float[Tensor, "k d"]
    """Rows spanning the subspace (need not be orthonormal)."""

    def __call__(self, act: Tensor) -> Tensor:
        q = _orthonormal(_basis_for(self.basis, act, "ProjectOut.basis"))
        return act - (act @ q.T) @ q


@dataclass(frozen=True, eq=False)
class ProjectInto(Intervention):
    """Keep only the component of the activation in a subspace: ``P x``."""

    basis: Float[Tensor, "k d"]
    """Rows spanning the subspace (need not be orthonormal)."""

    def __call__(self, act: Tensor) -> Tensor:
        q = _orthonormal(_basis_for(self.basis, act, "ProjectInto.basis"))
        return (act @ q.T) @ q


@dataclass(frozen=True, eq=False)
class Replace(Intervention):
    """Replace the activation by ``fn(act)``; ``fn`` must return the same shape."""

    fn: Callable[[Tensor], Tensor]
    """User function, activation in, activation out."""
    name: str = field(default="Replace")
    """Label recorded for provenance."""

    def __call__(self, act: Tensor) -> Tensor:
        out = self.fn(act)
        if not isinstance(out, Tensor) or out.shape != act.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ShapeError(f"Replace function {self.name!r} returned {got}, expected shape {tuple(act.shape)}")
        return out

    @property
    def label(self) -> str:
        return self.name


__all__ = ["Intervention", "Zero", "Mean", "Patch", "Add", "Scale", "ProjectOut", "ProjectInto", "Replace"]
