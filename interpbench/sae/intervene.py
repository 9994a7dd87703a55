"""SAE features as mediators: splice an SAE into its site and edit single features.

``SAESplice(sae, edit)`` is an :class:`~interpbench.interventions.Intervention` for the SAE's
site. With the error term kept (the default) it computes

1. ``z = sae.encode(x)``; ``z' = edit(z)`` (identity when ``edit`` is None);
2. ``x' = x + decode(z') - decode(z) = x + (z' - z) @ W_dec / out_scale``,

i.e. ``x' = decode(z') + (x - decode(z))``: the model sees its own activation plus the change
the edit makes, so the output is bit-for-bit unchanged until a feature is edited. With
``keep_error=False`` it returns the bare reconstruction ``decode(z')`` (for loss-recovered
measurements). Feature-level shortcuts: :meth:`SAESplice.zero`, ``.scale``, ``.add``
(steering in feature units), ``.patch`` (set features to values from another run).
``record`` (a dict) receives the latents ``z`` of every call under ``"z"``; gradients flow
through ``z`` when the trace keeps the graph (``detach=False``).
Per-head sites (``attn.hook_z``, ``[.. n_heads d_head]``) are flattened to ``n_heads·d_head``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from ..errors import ShapeError
from ..interventions import Intervention
from .arch import SAE

Features = Union[int, Sequence[int], Tensor]


def _feat(features: Features) -> Tensor:
    return torch.as_tensor([features] if isinstance(features, int) else features, dtype=torch.long)


@dataclass(frozen=True, eq=False)
class SAESplice(Intervention):
    """Run the activation through ``sae`` and apply ``edit`` to its latents (error term kept)."""

    sae: SAE
    """The SAE trained on this site (not a transcoder)."""
    edit: Optional[Callable[[Tensor], Tensor]] = None
    """Function latents -> latents ``[.. d_sae]``; None leaves them alone."""
    keep_error: bool = True
    """Add back ``x - decode(encode(x))``; False returns the bare reconstruction."""
    record: Optional[dict] = field(default=None)
    """If given, ``record['z']`` holds the latents of the last call."""
    name: str = "SAESplice"
    """Label recorded for provenance."""

    def __post_init__(self) -> None:
        if self.sae.cfg.is_transcoder:
            raise ShapeError("SAESplice splices SAEs, not transcoders (their output lives at another site)")

    def __call__(self, act: Tensor) -> Tensor:
        d = self.sae.cfg.d_in
        x = act
        if act.shape[-1] != d:
            if act.ndim >= 2 and act.shape[-1] * act.shape[-2] == d:
                x = act.flatten(-2)  # [.. n_heads d_head] -> [.. n_heads*d_head]
            else:
                raise ShapeError(f"SAE {self.sae.cfg.site} has d_in={d} but the site's activation is "
                                 f"{tuple(act.shape)}; splice it at the site it was trained on")
        z = self.sae.encode(x)
        if self.record is not None:
            self.record["z"] = z
        z_new = self.edit(z) if self.edit is not None else z
        if self.keep_error:
            if self.edit is None:
                return act
            delta = ((z_new - z) @ self.sae.W_dec) / self.sae.cfg.out_scale
            out = x + delta.to(x.dtype)
        else:
            out = self.sae.decode(z_new).to(x.dtype)
        return out.reshape(act.shape)

    @property
    def label(self) -> str:
        return self.name

    # -- feature-level shortcuts --------------------------------------------------------
    @classmethod
    def zero(cls, sae: SAE, features: Features) -> "SAESplice":
        """Ablate the given features (set them to 0)."""
        idx = _feat(features)
        return cls(sae, lambda z: z.index_fill(-1, idx.to(z.device), 0.0), name=f"SAEZero{idx.tolist()}")

    @classmethod
    def scale(cls, sae: SAE, features: Features, factor: float) -> "SAESplice":
        """Multiply the given features by ``factor``."""
        idx = _feat(features)

        def edit(z: Tensor) -> Tensor:
            i = idx.to(z.device)
            return z.index_copy(-1, i, z.index_select(-1, i) * factor)
        return cls(sae, edit, name=f"SAEScale{idx.tolist()}x{factor}")

    @classmethod
    def add(cls, sae: SAE, features: Features, coeff: float) -> "SAESplice":
        """Add ``coeff`` to the given features' activations (steering along their decoder rows)."""
        idx = _feat(features)

        def edit(z: Tensor) -> Tensor:
            i = idx.to(z.device)
            return z.index_copy(-1, i, z.index_select(-1, i) + coeff)
        return cls(sae, edit, name=f"SAEAdd{idx.tolist()}+{coeff}")

    @classmethod
    def patch(cls, sae: SAE, features: Features, source: Tensor) -> "SAESplice":
        """Set the given features to their values in ``source`` latents (broadcastable to ``z``)."""
        idx = _feat(features)

        def edit(z: Tensor) -> Tensor:
            i = idx.to(z.device)
            src = source.to(z.device, z.dtype).expand_as(z)
            return z.index_copy(-1, i, src.index_select(-1, i))
        return cls(sae, edit, name=f"SAEPatch{idx.tolist()}")


__all__ = ["SAESplice"]
