"""Vision dissection rows: every pixel of every scene, activation maps upsampled to the masks.

1. A batch of scenes gives images ``[B 3 H W]`` and masks ``[B C H W]``; rows are pixels in
   ``(batch, h, w)`` order: masks ``[B C H W] -> [B*H*W C]``.
2. A conv site ``[B K h w]`` is upsampled bilinearly to ``H x W`` (``align_corners=False``,
   as in Network Dissection) and laid out the same way: ``[B*H*W K]``.
3. A site without spatial axes ``h w`` is rejected with its axes named.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InterpbenchError, ShapeError
from ..engine import Batch
from .scenes import Scenes


def check_spatial(model, sites: Sequence[str]) -> None:
    for s in sites:
        axes = model.site_def(s).axes
        if axes[-2:] != ("h", "w"):
            raise InterpbenchError(f"site {s} has axes {axes} without spatial axes (h, w); "
                                   f"dissect conv outputs such as conv2.hook_post")


def scene_batches(scenes: Scenes, batch_size: int = 100, device=None):
    """``batches()`` for :func:`~interpbench.dissect.engine.dissect` (step 1)."""
    n, c, h, w = scenes.masks.shape
    if scenes.images.shape[0] != n or scenes.images.shape[-2:] != (h, w):
        raise ShapeError(f"concept masks have shape {tuple(scenes.masks.shape)} but the images "
                         f"{tuple(scenes.images.shape)}; masks must be [N C H W] at the image resolution")
    if not bool(scenes.masks.flatten(2).any(2).any(0).all()):
        empty = (~scenes.masks.flatten(2).any(2).any(0)).nonzero().flatten().tolist()
        raise InterpbenchError(f"concepts {empty} are empty on these images; drop them or generate more scenes")

    def gen():
        for start in range(0, n, batch_size):
            imgs = scenes.images[start:start + batch_size].to(device)
            m = scenes.masks[start:start + batch_size]
            rows = m.permute(0, 2, 3, 1).reshape(-1, c)  # [B C H W] -> [B*H*W C]
            ids = torch.arange(start, start + m.shape[0]).repeat_interleave(h * w)
            yield Batch(imgs, rows, ids)

    return gen


def upsampled_rows(act: Tensor, size: tuple[int, int]) -> Tensor:
    """``[B K h w] -> [B*H*W K]`` (step 2)."""
    up = F.interpolate(act.float(), size=size, mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1).reshape(-1, act.shape[1])  # [B K H W] -> [B*H*W K]


def vision_acts_fn(model, sites: Sequence[str], size: tuple[int, int]):
    check_spatial(model, sites)

    @torch.no_grad()
    def fn(images: Tensor) -> dict[str, Tensor]:
        _, cache = model.run_with_cache(images, list(sites))
        return {s: upsampled_rows(cache[s], size) for s in sites}

    return fn
