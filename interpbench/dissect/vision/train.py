"""Train the scene CNN and write its weights (``python -m interpbench.dissect.vision.train``).

1. Generate ``n_train`` scenes (seed 0) and ``n_test`` held-out scenes (seed 1).
2. Build :class:`~.model.SceneCNN`, plant the colour detectors in conv1 channels 0..3 and
   freeze them (their weight and bias gradients are zeroed before every step).
3. Adam (lr 3e-3), cross-entropy on the shape class, ``epochs`` passes in batches of 64,
   ``torch.manual_seed(0)``; report held-out accuracy.
4. Save the state dict as safetensors (atomically) — about 60 kB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from ...paths import atomic_write_bytes
from .model import N_PLANTED, WEIGHTS, SceneCNN, plant_colour_units
from .scenes import make_scenes


def train(n_train: int = 6000, n_test: int = 1000, epochs: int = 6, out: Path = WEIGHTS, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    tr, te = make_scenes(n_train, seed=0), make_scenes(n_test, seed=1)
    net = SceneCNN()
    plant_colour_units(net)
    planted_w = net.conv1.weight[:N_PLANTED].detach().clone()
    planted_b = net.conv1.bias[:N_PLANTED].detach().clone()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(epochs):
        perm = torch.randperm(n_train)
        for i in range(0, n_train, 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(net(tr.images[idx]), tr.labels[idx])
            opt.zero_grad()
            loss.backward()
            net.conv1.weight.grad[:N_PLANTED] = 0
            net.conv1.bias.grad[:N_PLANTED] = 0
            opt.step()
        with torch.no_grad():  # Adam's weight decay is off, so frozen units stay exact; restore anyway
            net.conv1.weight[:N_PLANTED] = planted_w
            net.conv1.bias[:N_PLANTED] = planted_b
            acc = (net(te.images).argmax(-1) == te.labels).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}  held-out accuracy {acc:.3f}")
    from safetensors.torch import save

    atomic_write_bytes(Path(out), save({k: v.contiguous() for k, v in net.state_dict().items()}))
    return {"accuracy": acc, "n_train": n_train, "epochs": epochs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--n-train", type=int, default=6000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(train(args.n_train, epochs=args.epochs, out=args.out))


if __name__ == "__main__":
    main()
