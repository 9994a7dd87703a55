"""Path interventions in CNN classifiers and the task-specific causal explanatory graph
(after "Causal Analysis for Robust Interpretability of Neural Networks", Khakzar et al.).

1. A path ``c -> d`` joins channel ``c`` of a conv layer's input (``conv{k+1}.hook_in``,
   the previous layer's pooled ReLU output) to channel ``d`` of its output
   (``conv{k+1}.hook_pre``) through the weights ``W[d, c]``. Its contribution is
   ``x_c * W[d, c]`` (a single-channel convolution, no bias).
2. Path effect = mean over the images of class ``y`` of ``score_y(without the path) -
   score_y(clean)``, where "without the path" subtracts the contribution from channel
   ``d``'s pre-activation (everything else, including the rest of ``d``, is unchanged).
   ``chunk`` paths run in one forward by repeating the images along the batch axis.
3. Gradient baseline (gradient x activation on the same quantity): the first-order
   estimate ``-sum W[d,c,i,j] * dscore/dW[d,c,i,j]``, read off one backward pass.
4. Graph: the ``top`` paths per layer pair by |effect| become edges between unit nodes
   (``conv{k}.c{i}``, type ``neuron``, layer ``k-1``); each last-layer unit on a kept path
   gets an edge to the ``logits`` node scored by its zero-ablation effect.
5. Stability: recompute both scorings on perturbed images (Gaussian noise, shifts) and
   report the Jaccard index between the clean and perturbed top-``k`` edge sets.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InterpbenchError
from ...graphs.ir import CausalGraph, Edge, GraphMeta, Node
from ...interventions import Add
from ...models.sitemap import get_module
from ..ablate import SetUnits


def _conv(model, k: int):
    sd = model.site_def(f"conv{k}.hook_pre")
    return get_module(model.hf, sd.module)


def path_effects(model, k: int, images: Tensor, cls: int, chunk: int = 16,
                 pairs: Optional[Sequence[tuple[int, int]]] = None, fast: bool = True) -> Tensor:
    """``[C_in C_out]`` effects of removing each path into ``conv{k}`` (steps 1-2).

    ``fast``: when the network has ``from_pre(k, pre)`` (the rest of the forward from
    conv``k``'s pre-activation, as :class:`~.model.SceneCNN` does), only that part is rerun;
    otherwise (or with ``fast=False``) each chunk reruns the whole hooked forward.
    """
    conv = _conv(model, k)
    if conv.groups != 1:
        raise InterpbenchError(f"conv{k} is grouped; path interventions need groups=1")
    w = conv.weight.detach()                                               # [C_out C_in kh kw]
    c_out, c_in = w.shape[:2]
    with torch.no_grad():
        logits, cache = model.run_with_cache(images, [f"conv{k}.hook_in", f"conv{k}.hook_pre"])
        clean = logits[:, cls].mean()
        x = cache[f"conv{k}.hook_in"]                                       # [B C_in h w]
        pre = cache[f"conv{k}.hook_pre"]                                    # [B C_out h' w']
        rest = getattr(model.hf, "from_pre", None) if fast else None
        pairs = list(pairs) if pairs is not None else [(c, d) for c in range(c_in) for d in range(c_out)]
        eff = torch.zeros(c_in, c_out, device=images.device)
        b = images.shape[0]
        for s in range(0, len(pairs), chunk):
            part = pairs[s:s + chunk]
            cs = torch.tensor([p[0] for p in part], device=images.device)
            ds = torch.tensor([p[1] for p in part], device=images.device)
            contrib = _path_contrib(x, w, cs, ds, conv)                    # [P B h w]
            delta = torch.zeros(len(part) * b, c_out, *contrib.shape[-2:], device=images.device)
            delta[torch.arange(len(part) * b, device=images.device), ds.repeat_interleave(b)] = contrib.flatten(0, 1)
            if rest is not None:
                out = rest(k, pre.repeat(len(part), 1, 1, 1) - delta)      # [P*B classes]
            else:
                rep = images.repeat(len(part), 1, 1, 1)                    # [P*B 3 H W]
                out = model.run_with_interventions(rep, {f"conv{k}.hook_pre": Add(delta, -1.0)})
            scores = out[:, cls].reshape(len(part), b).mean(1)             # [P*B] -> [P]
            eff[cs, ds] = scores - clean
    return eff


def _path_contrib(x: Tensor, w: Tensor, cs: Tensor, ds: Tensor, conv) -> Tensor:
    """``[P B h w]``: x[:, c] convolved with W[d, c] for each path (grouped conv, one group per path)."""
    b = x.shape[0]
    inp = x[:, cs]                                                          # [B P h w]
    ker = w[ds, cs][:, None]                                                # [P 1 kh kw]
    out = F.conv2d(inp, ker, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=len(cs))
    return out.transpose(0, 1)                                              # [B P h w] -> [P B h w]


def gradient_path_scores(model, k: int, images: Tensor, cls: int) -> Tensor:
    """``[C_in C_out]`` gradient x activation estimate of the path effects (step 3)."""
    conv = _conv(model, k)
    with torch.enable_grad():
        score = model(images)[:, cls].mean()
        (g,) = torch.autograd.grad(score, conv.weight)
    return -(conv.weight.detach() * g).sum((2, 3)).T                        # [C_out C_in] -> [C_in C_out]


def unit_logit_effects(model, k: int, images: Tensor, cls: int) -> Tensor:
    """``[C]`` zero-ablation effect of each ``conv{k}.hook_post`` channel on the class score."""
    site = f"conv{k}.hook_post"
    with torch.no_grad():
        clean = model(images)[:, cls].mean()
        n = model.run_with_cache(images[:1], [site])[1][site].shape[1]
        return torch.stack([model.run_with_interventions(images, {site: SetUnits((u,), 1)})[:, cls].mean() - clean
                            for u in range(n)])


def top_edges(scores: Tensor, k: int) -> set[tuple[int, int]]:
    flat = scores.abs().flatten().topk(min(k, scores.numel())).indices
    return {(int(i) // scores.shape[1], int(i) % scores.shape[1]) for i in flat}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def build_graph(model, images: Tensor, cls: int, class_name: str, layers: Sequence[int] = (2, 3), top: int = 8,
                labels: Optional[dict[str, str]] = None, model_name: str = "scene-cnn") -> tuple[CausalGraph, dict]:
    """The causal explanatory graph of class ``cls`` (step 4) and the raw effect tables."""
    labels = labels or {}
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    tables = {}

    def node(k: int, c: int) -> str:
        nid = f"conv{k}.c{c}"
        if nid not in nodes:
            nodes[nid] = Node(nid, "neuron", k - 1, index=c, label=labels.get(nid, ""))
        return nid

    last = max(layers)
    for k in layers:
        eff = path_effects(model, k, images, cls)
        tables[f"paths_conv{k}"] = eff
        for c, d in sorted(top_edges(eff, top)):
            edges.append(Edge(node(k - 1, c), node(k, d), float(eff[c, d]), "path_intervention", "zero"))
    unit_eff = unit_logit_effects(model, last, images, cls)
    tables[f"units_conv{last}"] = unit_eff
    out_id = f"logits.{class_name}"
    kept_last = sorted({int(n.index) for n in nodes.values() if n.layer == last - 1})
    for d in kept_last:
        edges.append(Edge(node(last, d), out_id, float(unit_eff[d]), "unit_ablation", "zero"))
    order = sorted(nodes.values(), key=lambda n: (n.layer, n.index))
    all_nodes = order + [Node(out_id, "logits", last, index=cls, label=class_name)]
    meta = GraphMeta(model=model_name, task=f"scene class {class_name}", metric=f"logit[{class_name}]",
                     method="path_intervention", ablation="zero", n_prompts=int(images.shape[0]),
                     passes={"forward": sum(int(t.numel()) for n, t in tables.items() if n.startswith("paths")) // 16
                             + len(unit_eff) + 2, "backward": 0},
                     params={"layers": list(layers), "top": top}, model_cfg={"n_layers": model.cfg.n_layers})
    return CausalGraph(tuple(all_nodes), tuple(edges), meta), tables


def perturbations(images: Tensor, seed: int = 0) -> dict[str, Tensor]:
    """Gaussian noise (sd 0.05, 0.1) and shifts by 1-2 pixels (torch.roll), all seeded."""
    g = torch.Generator().manual_seed(seed)
    noise = lambda sd: (images + sd * torch.randn(images.shape, generator=g).to(images.device)).clamp(0, 1)  # noqa: E731
    return {"noise0.05": noise(0.05), "noise0.1": noise(0.1), "shift1": images.roll((1, 1), (2, 3)),
            "shift2": images.roll((2, -2), (2, 3))}


def stability(model, images: Tensor, cls: int, k: int = 3, top: int = 10, seed: int = 0) -> dict:
    """Jaccard of clean vs perturbed top-``top`` edges into conv``k``, per method (step 5)."""
    clean_p = top_edges(path_effects(model, k, images, cls), top)
    clean_g = top_edges(gradient_path_scores(model, k, images, cls), top)
    rows = {}
    for name, img in perturbations(images, seed).items():
        rows[name] = {"path_intervention": jaccard(clean_p, top_edges(path_effects(model, k, img, cls), top)),
                      "gradient": jaccard(clean_g, top_edges(gradient_path_scores(model, k, img, cls), top))}
    mean = {m: sum(r[m] for r in rows.values()) / len(rows) for m in ("path_intervention", "gradient")}
    return {"layer": f"conv{k}", "top": top, "per_perturbation": rows, "mean": mean,
            "overlap_clean": jaccard(clean_p, clean_g)}
