"""Synthetic scenes with exact per-pixel concept masks, generated in code (seeded, CPU, fast).

1. Each image is ``size x size`` RGB (default 32) with a noisy grey background and one
   object. The object's class (the classification target) is one of ``circle``,
   ``square``, ``triangle``, ``house``; a house is made of two parts, a ``wall`` (a
   rectangle) and a ``roof`` (a triangle on top).
2. The object has a colour (``red``, ``green``, ``blue``, ``yellow``) and a texture
   (``plain``, ``stripes`` = every other pair of rows darkened, ``dots`` = a darkened
   pixel every third row and column), a centre and a radius drawn uniformly.
3. Concept masks (bool ``[N C H W]``), in :data:`CONCEPTS` order: the four shapes, the two
   house parts, the four colours, the three textures, ``background``, and the image
   regions ``top``/``bottom``/``left``/``right`` restricted to object pixels.
4. Pixel values get Gaussian noise (sd 0.03) and are clipped to [0, 1]; all randomness comes
   from one ``torch.Generator`` seeded with ``seed`` (same seed, same scenes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...errors import InterpbenchError

CLASSES = ("circle", "square", "triangle", "house")
COLOURS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.1), "blue": (0.1, 0.2, 0.9), "yellow": (0.9, 0.85, 0.1)}
TEXTURES = ("plain", "stripes", "dots")
CONCEPTS = (("circle", "square", "triangle", "house", "wall", "roof") + tuple(COLOURS) + TEXTURES
            + ("background", "top", "bottom", "left", "right"))


@dataclass(frozen=True)
class Scenes:
    """A batch of generated scenes."""

    images: Tensor
    """Float ``[N 3 H W]`` in [0, 1]."""
    labels: Tensor
    """Long ``[N]``: index into :data:`CLASSES`."""
    masks: Tensor
    """Bool ``[N C H W]``: concept masks in :data:`CONCEPTS` order."""
    colour: Tensor
    """Long ``[N]``: index into :data:`COLOURS`."""
    texture: Tensor
    """Long ``[N]``: index into :data:`TEXTURES`."""


def make_scenes(n: int, size: int = 32, seed: int = 0) -> Scenes:
    """Generate ``n`` scenes (steps 1-4)."""
    if n < 1 or size < 16:
        raise InterpbenchError(f"make_scenes needs n >= 1 and size >= 16, got n={n}, size={size}")
    g = torch.Generator().manual_seed(seed)
    u = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
    cls = torch.randint(0, len(CLASSES), (n,), generator=g)
    col = torch.randint(0, len(COLOURS), (n,), generator=g)
    tex = torch.randint(0, len(TEXTURES), (n,), generator=g)
    r = (size * (0.18 + 0.12 * u(n)))[:, None, None]                       # [n 1 1]
    cx = (r[:, 0, 0] + 1 + u(n) * (size - 2 * r[:, 0, 0] - 2))[:, None, None]
    cy = (r[:, 0, 0] + 1 + u(n) * (size - 2 * r[:, 0, 0] - 2))[:, None, None]
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    x, y = xs[None], ys[None]                                               # [1 H W]
    circle = (x - cx) ** 2 + (y - cy) ** 2 <= r ** 2
    square = ((x - cx).abs() <= r * 0.85) & ((y - cy).abs() <= r * 0.85)
    tri = (y >= cy - r) & (y <= cy + r) & ((x - cx).abs() <= (y - (cy - r)) / 2)
    wall = ((x - cx).abs() <= 0.7 * r) & (y > cy - 0.3 * r) & (y <= cy + r)
    roof = (y >= cy - r) & (y <= cy - 0.3 * r) & ((x - cx).abs() <= (y - (cy - r)) / (0.7 * r) * 0.95 * r)
    house = wall | roof
    shapes = torch.stack([circle, square, tri, house], 1)                   # [n 4 H W]
    obj = shapes[torch.arange(n), cls]                                      # [n H W]
    is_house = (cls == 3)[:, None, None]
    wall, roof = wall & is_house, roof & is_house
    stripes = ((ys.long() // 2) % 2 == 1)[None]
    dots = ((ys.long() % 3 == 1) & (xs.long() % 3 == 1))[None]
    dark = torch.where((tex == 1)[:, None, None], stripes, torch.where((tex == 2)[:, None, None], dots, False))
    rgb = torch.tensor(list(COLOURS.values()))[col][:, :, None, None]       # [n 3 1 1]
    shade = torch.where(dark & obj, 0.45, 1.0)[:, None]                     # [n 1 H W]
    bg = 0.35 + 0.1 * u(n)[:, None, None, None]
    img = torch.where(obj[:, None], rgb * shade, bg.expand(n, 3, 1, 1))
    img = (img + 0.03 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    sh = torch.zeros(n, 4, size, size, dtype=torch.bool)
    sh[torch.arange(n), cls] = obj
    cm = torch.zeros(n, len(COLOURS), size, size, dtype=torch.bool)
    cm[torch.arange(n), col] = obj
    tm = torch.zeros(n, len(TEXTURES), size, size, dtype=torch.bool)
    tm[torch.arange(n), tex] = obj
    half = size / 2
    regions = torch.stack([(y < half).expand_as(obj), (y >= half).expand_as(obj),
                           (x < half).expand_as(obj), (x >= half).expand_as(obj)], 1) & obj[:, None]
    masks = torch.cat([sh, wall[:, None], roof[:, None], cm, tm, (~obj)[:, None], regions], 1)
    return Scenes(img.float(), cls, masks, col, tex)
