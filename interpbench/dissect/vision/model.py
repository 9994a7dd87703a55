"""A small scene CNN, its committed weights, and HookedModel wrappers for any conv net.

1. :class:`SceneCNN`: ``conv1(3->16) relu pool  conv2(16->32) relu pool  conv3(32->32) relu
   gap  fc(32->4)`` on 32x32 scenes. Channels ``0..3`` of ``conv1`` are *planted* colour
   detectors (red, green, blue, yellow; see :func:`plant_colour_units`) and stay frozen
   during training, so their concept is known by construction.
2. Sites (axes ``batch channel h w``): ``conv{k}.hook_in`` (the convolution's input),
   ``conv{k}.hook_pre`` (its output) and
   ``conv{k}.hook_post`` (after the ReLU, before pooling), ``layer = k - 1``; ``hook_logits``
   (``batch class``) is the classifier output.
3. :func:`wrap_cnn` wraps any torchvision-style CNN: every ``nn.Conv2d`` at module path
   ``P`` becomes ``P.hook_in``, ``P.hook_pre`` and, when the next module in ``named_modules`` order is a
   ReLU, ``P.hook_post``. The forward is ``module(images)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from ...errors import ModelLoadError
from ...models.model import HookedModel, ModelConfig
from ...models.sitemap import SiteDef
from .scenes import CLASSES, COLOURS

WEIGHTS = Path(__file__).parent / "weights" / "scene_cnn.safetensors"
CONV_AXES = ("batch", "channel", "h", "w")
N_PLANTED = len(COLOURS)


class SceneCNN(nn.Module):
    """Three conv layers and a linear classifier over global-average-pooled features."""

    def __init__(self, widths: tuple[int, int, int] = (16, 32, 32), n_classes: int = len(CLASSES)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(widths[0], widths[1], 3, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(widths[1], widths[2], 3, padding=1)
        self.relu3 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(widths[2], n_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.relu1(self.conv1(x)))   # [b 16 32 32] -> [b 16 16 16]
        x = self.pool(self.relu2(self.conv2(x)))   # [b 32 16 16] -> [b 32 8 8]
        x = self.relu3(self.conv3(x))              # [b 32 8 8]
        return self.fc(x.mean((2, 3)))             # [b 32] -> [b classes]

    def from_pre(self, k: int, pre: Tensor) -> Tensor:
        """Logits from conv``k``'s pre-activation (the rest of the forward; fast path interventions)."""
        x = getattr(self, f"relu{k}")(pre)
        for j in range(k + 1, 4):
            x = self.pool(x)
            x = getattr(self, f"relu{j}")(getattr(self, f"conv{j}")(x))
        return self.fc(x.mean((2, 3)))


def plant_colour_units(model: SceneCNN, seed: int = 0) -> None:
    """Set conv1 channels 0..3 to colour detectors (red, green, blue, yellow): a centre-pixel
    linear filter on RGB fitted by a hinge loss to fire (> 0) on the colour at full and dark
    (texture) shade and stay below zero on the other colours and the grey background."""
    g = torch.Generator().manual_seed(seed)
    cols = torch.tensor(list(COLOURS.values()))                                  # [4 3]
    protos = torch.cat([cols, cols * 0.45, torch.linspace(0.3, 0.5, 5)[:, None].expand(5, 3)])
    owner = torch.cat([torch.arange(4), torch.arange(4), torch.full((5,), -1)])   # colour index, -1 = grey
    x = protos.repeat(40, 1) + 0.03 * torch.randn(40 * len(protos), 3, generator=g)
    own = owner.repeat(40)
    with torch.no_grad():
        for k in range(len(COLOURS)):
            y = torch.where(own == k, 1.0, -1.0)
            w = torch.zeros(3, requires_grad=True)
            b = torch.zeros((), requires_grad=True)
            opt = torch.optim.Adam([w, b], lr=0.05)
            with torch.enable_grad():
                for _ in range(400):
                    loss = torch.relu(1 - y * (x @ w + b)).mean() + 1e-3 * (w ** 2).sum()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            model.conv1.weight[k] = 0.0
            model.conv1.weight[k, :, 1, 1] = w.detach()
            model.conv1.bias[k] = b.detach()


def scene_sites(widths: tuple[int, ...] = (16, 32, 32)) -> list[SiteDef]:
    defs = []
    for k in range(len(widths)):
        defs.append(SiteDef(f"conv{k + 1}.hook_in", f"conv{k + 1}", "input", CONV_AXES, k))
        defs.append(SiteDef(f"conv{k + 1}.hook_pre", f"conv{k + 1}", "output", CONV_AXES, k))
        defs.append(SiteDef(f"conv{k + 1}.hook_post", f"relu{k + 1}", "output", CONV_AXES, k))
    defs.append(SiteDef("hook_logits", "fc", "output", ("batch", "class"), len(widths)))
    return defs


def _cfg(name: str, n_layers: int, width: int, n_classes: int) -> ModelConfig:
    return ModelConfig(name=name, arch="CNN", n_layers=n_layers, n_heads=0, n_kv_heads=0, d_model=width,
                       d_head=0, d_mlp=width, d_vocab=n_classes, n_ctx=0, causal=False)


def _forward(module: nn.Module, images: Tensor, attention_mask: Optional[Tensor] = None) -> Tensor:
    return module(images)


def load_scene_cnn(path: Optional[Path] = None, device=None) -> HookedModel:
    """The committed scene CNN as a :class:`HookedModel` (``model(images)`` -> class logits)."""
    from safetensors.torch import load_file

    path = Path(path or WEIGHTS)
    if not path.exists():
        raise ModelLoadError(f"no scene CNN weights at {path}; train them with "
                             f"`python -m interpbench.dissect.vision.train`")
    net = SceneCNN()
    net.load_state_dict(load_file(str(path)))
    net.eval()
    if device is not None:
        net.to(device)
    return HookedModel(net, None, _cfg("scene-cnn", 3, 32, len(CLASSES)), scene_sites(), forward=_forward)


def wrap_cnn(module: nn.Module, name: str = "cnn", n_classes: int = 1000) -> HookedModel:
    """Any CNN as a HookedModel with ``P.hook_pre`` / ``P.hook_post`` sites per Conv2d (step 3)."""
    mods = list(module.named_modules())
    defs = []
    layer = 0
    for i, (path, mod) in enumerate(mods):
        if isinstance(mod, nn.Conv2d):
            defs.append(SiteDef(f"{path}.hook_in", path, "input", CONV_AXES, layer))
            defs.append(SiteDef(f"{path}.hook_pre", path, "output", CONV_AXES, layer))
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            if nxt is not None and isinstance(nxt[1], nn.ReLU) and not nxt[1].inplace:
                defs.append(SiteDef(f"{path}.hook_post", nxt[0], "output", CONV_AXES, layer))
            layer += 1
    if not defs:
        raise ModelLoadError(f"{type(module).__name__} has no nn.Conv2d modules to dissect")
    module.eval()
    return HookedModel(module, None, _cfg(name, layer, 0, n_classes), defs, forward=_forward)
