"""Component kinds for patching sweeps: which site, which grid, which region per element.

A *kind* names a family of sites (one per layer) and the grid of patch elements:

=============  ===========================  ===========================  ===================
kind           site (layer l)               grid (values shape)          one element patches
=============  ===========================  ===========================  ===================
resid_pre      blocks.l.hook_resid_pre      [n_layers, n_pos]            one position
resid_mid      blocks.l.hook_resid_mid      [n_layers, n_pos]            one position
resid_post     blocks.l.hook_resid_post     [n_layers, n_pos]            one position
attn_out       blocks.l.hook_attn_out       [n_layers, n_pos]            one position
mlp_out        blocks.l.hook_mlp_out        [n_layers, n_pos]            one position
head_out       blocks.l.attn.hook_z         [n_layers, n_heads]          one head, all positions
head_out_pos   blocks.l.attn.hook_z         [n_layers, n_pos, n_heads]   one head, one position
q / k / v      blocks.l.attn.hook_q|k|v     [n_layers, heads]            one head, all positions
q_pos/k_pos/v_pos  same                     [n_layers, n_pos, heads]     one head, one position
neuron         blocks.l.mlp.hook_post       [n_layers, d_mlp]            one neuron, all positions
=============  ===========================  ===========================  ===================

k/v use the model's key/value heads (``n_kv_heads`` under GQA). Per-head outputs are
patched through ``hook_z`` (the input of the output projection), which is how
``transformer_lens.patching.get_act_patch_attn_head_out_*`` patch them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InterpbenchError


@dataclass(frozen=True)
class Kind:
    """One component kind (see the module table)."""

    name: str
    """Kind name, e.g. ``resid_pre``."""
    hook: str
    """Site name template with ``{l}`` for the layer."""
    grid: str
    """``pos``, ``head``, ``pos_head`` or ``neuron`` (the axes after ``layer``)."""

    def site(self, layer: int) -> str:
        return self.hook.format(l=layer)

    @property
    def positional(self) -> bool:
        """True when an element patches one position (so earlier positions can be reused)."""
        return self.grid in ("pos", "pos_head")

    def axes(self) -> tuple[str, ...]:
        return {"pos": ("layer", "pos"), "head": ("layer", "head"), "pos_head": ("layer", "pos", "head"),
                "neuron": ("layer", "neuron")}[self.grid]


_K = [Kind("resid_pre", "blocks.{l}.hook_resid_pre", "pos"), Kind("resid_mid", "blocks.{l}.hook_resid_mid", "pos"),
      Kind("resid_post", "blocks.{l}.hook_resid_post", "pos"), Kind("attn_out", "blocks.{l}.hook_attn_out", "pos"),
      Kind("mlp_out", "blocks.{l}.hook_mlp_out", "pos"), Kind("head_out", "blocks.{l}.attn.hook_z", "head"),
      Kind("head_out_pos", "blocks.{l}.attn.hook_z", "pos_head"), Kind("neuron", "blocks.{l}.mlp.hook_post", "neuron")]
for _x in "qkv":
    _K += [Kind(_x, f"blocks.{{l}}.attn.hook_{_x}", "head"), Kind(f"{_x}_pos", f"blocks.{{l}}.attn.hook_{_x}", "pos_head")]
KINDS: dict[str, Kind] = {k.name: k for k in _K}


def get_kind(name: str) -> Kind:
    if isinstance(name, Kind):
        return name
    if name not in KINDS:
        raise InterpbenchError(f"unknown patching site kind {name!r}; use one of {', '.join(KINDS)}")
    return KINDS[name]


def grid_shape(kind: Kind, n_layers: int, n_pos: int, site_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Values shape after ``layer`` given one site tensor's shape without batch ``[pos, ...]``."""
    if kind.grid == "pos":
        return (n_layers, n_pos)
    if kind.grid == "head":
        return (n_layers, site_shape[1])
    if kind.grid == "pos_head":
        return (n_layers, n_pos, site_shape[1])
    return (n_layers, site_shape[-1])


def site_index(kind: Kind, elem: tuple[int, ...]) -> str:
    """Index suffix of one grid element (without the layer), e.g. ``[head=2,pos=5]``."""
    if kind.grid == "pos":
        return f"[pos={elem[0]}]"
    if kind.grid == "head":
        return f"[head={elem[0]}]"
    if kind.grid == "pos_head":
        return f"[head={elem[1]},pos={elem[0]}]"
    return f"[neuron={elem[0]}]"


def element_mask(kind: Kind, elems: Tensor, p0: int, site_shape: tuple[int, ...]) -> Tensor:
    """Boolean mask ``[k, 1, S, ...]`` broadcasting against a site tensor ``[k, n, S, ...]``.

    ``elems``: ``[k, e]`` grid coordinates after the layer (pos / head / pos,head / neuron);
    ``p0``: first position in the suffix; ``site_shape``: ``(S, ...)`` of one prompt.
    """
    S = site_shape[0]
    dev = elems.device
    k = elems.shape[0]
    if kind.grid in ("pos", "pos_head"):
        pos_eq = (torch.arange(S, device=dev) + p0)[None] == elems[:, :1]  # [k S]
        if kind.grid == "pos":
            return pos_eq.view(k, 1, S, *([1] * (len(site_shape) - 1)))
        H = site_shape[1]
        head_eq = torch.arange(H, device=dev)[None] == elems[:, 1:2]  # [k H]
        return (pos_eq[:, :, None] & head_eq[:, None, :]).view(k, 1, S, H, 1)
    if kind.grid == "head":
        H = site_shape[1]
        return (torch.arange(H, device=dev)[None] == elems[:, :1]).view(k, 1, 1, H, 1)
    D = site_shape[-1]
    return (torch.arange(D, device=dev)[None] == elems[:, :1]).view(k, 1, 1, D)
