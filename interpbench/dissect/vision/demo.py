"""The vision demo (``interpbench dissect --vision-demo``, recipe kind ``dissect_vision``).

1. Load the committed scene CNN and generate ``n_images`` held-out scenes (seed 7).
2. Dissect ``conv{1,2,3}.hook_post`` against the pixel concept masks (activation maps
   upsampled to 32x32).
3. Ground truth: conv1 channels 0..3 are planted colour detectors; precision = planted
   units labelled with their colour / units labelled with any colour; recall = planted
   units labelled with their colour / planted units. Trained conv1 units also become colour
   detectors, so colour labels are also verified by a probe (mean activation per colour), and
   conv3 shape labels by exhaustive ablation (every conv3 channel zero-ablated alone: does it
   lower the logit of its labelled class most?).
4. Unit interventions (GAN Dissection) for class ``cls``: rank conv3 channels by the
   zero-ablation ACE on the class logit (bootstrap CIs), then ablate the top ``n`` for
   growing ``n`` (and ``n`` random channels as a control): the effect grows with ``n``.
5. Path interventions: the causal explanatory graph of class ``cls`` (graph.json) and the
   stability of its conv2 and conv3 edges under noise / shifts against gradient x activation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import torch

from ..engine import DissectConfig, dissect
from .data import scene_batches, vision_acts_fn
from .model import N_PLANTED, load_scene_cnn
from .scenes import CLASSES, COLOURS, CONCEPTS, make_scenes


@dataclass(frozen=True)
class VisionDemoConfig:
    """Settings of the vision dissection demo."""

    n_images: int = 400
    """Held-out scenes for dissection and interventions."""
    cls: str = "house"
    """Class whose units, paths and graph are analysed."""
    quantile: float = 0.995
    """Activation threshold quantile."""
    iou_threshold: float = 0.04
    """Label threshold."""
    comp_units: int = 4
    """Units per site with compositional labels."""
    graph_images: int = 32
    """Images of the class used for path effects and the graph."""
    top_paths: int = 8
    """Edges kept per layer pair in the graph."""
    stability_top: int = 10
    """Top-k edges compared across perturbations."""
    device: Optional[str] = None
    """Device (None: CPU)."""

    def __post_init__(self) -> None:
        if self.cls not in CLASSES:
            from ...errors import ConfigError

            raise ConfigError(f"cls must be one of {', '.join(CLASSES)}, got {self.cls!r}")


def ground_truth(labels) -> dict:
    """Step 3 precision / recall over conv1's planted colour channels."""
    colours = list(COLOURS)
    planted = {k: colours[k] for k in range(N_PLANTED)}
    tp = sum(1 for lab in labels if lab.unit in planted and lab.concept == planted[lab.unit])
    pred = sum(1 for lab in labels if lab.concept in colours)
    return {"planted": {f"conv1.c{k}": c for k, c in planted.items()},
            "got": {f"conv1.c{k}": labels[k].concept for k in planted},
            "iou": {f"conv1.c{k}": round(labels[k].iou, 4) for k in planted},
            "precision": tp / max(1, pred), "recall": tp / len(planted),
            "colour_labelled_units": [f"conv1.c{lab.unit}" for lab in labels if lab.concept in colours]}


def colour_selectivity(model, scenes, labels) -> dict:
    """Verify colour labels in conv1 by probing: a unit labelled colour ``c`` is confirmed when
    its mean activation over pixels of colour ``c`` exceeds that over every other colour."""
    colours = list(COLOURS)
    with torch.no_grad():
        act = model.run_with_cache(scenes.images.to(model.device), ["conv1.hook_post"])[1]["conv1.hook_post"]  # [N K H W]
    k0 = CONCEPTS.index(colours[0])
    m = scenes.masks[:, k0:k0 + len(colours)].float().to(act.device)                                # [N colours H W]
    means = torch.einsum("nkhw,nchw->kc", act.float(), m) / m.sum((0, 2, 3)).clamp(min=1)  # [K colours]
    named = [lab for lab in labels if lab.concept in colours]
    ok = [lab.unit for lab in named if colours[int(means[lab.unit].argmax())] == lab.concept]
    return {"labelled": len(named), "confirmed": len(ok), "precision": len(ok) / max(1, len(named))}


def ablation_agreement(labels, exhaustive) -> dict:
    """Verify shape labels in conv3 by exhaustive ablation: a unit labelled with a class name is
    confirmed when zero-ablating it lowers that class's logit most."""
    named = [lab for lab in labels if lab.concept in CLASSES]
    ok = [lab.unit for lab in named if CLASSES[int(exhaustive[lab.unit].argmin())] == lab.concept]
    return {"labelled": len(named), "confirmed": len(ok), "precision": len(ok) / max(1, len(named))}


def run_vision(cfg: VisionDemoConfig):
    """Vision dissection demo into a run dir (see the module docstring)."""
    from ...recipes import RunOutput
    from ..ablate import SetUnits, ablation_curve, rank_units
    from ..report import curve_figure, labels_figure, labels_payload, stability_figure
    from .paths import build_graph, stability

    dev = torch.device(cfg.device) if cfg.device else torch.device("cpu")
    model = load_scene_cnn(device=dev)
    scenes = make_scenes(cfg.n_images, seed=7)
    sites = ["conv1.hook_post", "conv2.hook_post", "conv3.hook_post"]
    size = tuple(scenes.images.shape[-2:])
    dcfg = DissectConfig(quantile=cfg.quantile, iou_threshold=cfg.iou_threshold, comp_units=cfg.comp_units,
                         tail=int(cfg.n_images * size[0] * size[1] * (1 - cfg.quantile)) + 64)
    res = dissect(vision_acts_fn(model, sites, size), scene_batches(scenes, 100, dev), sites, list(CONCEPTS), dcfg)
    labels = {f"conv{k + 1}.c{lab.unit}": lab.formula or lab.concept
              for k, s in enumerate(sites) for lab in res[s].labels if lab.concept}
    scores: dict = {"n_images": cfg.n_images, "concepts": list(CONCEPTS), "per_site": {}}
    for s, r in res.items():
        scores["per_site"][s] = {"units": len(r.labels), "labelled": sum(bool(x.concept) for x in r.labels),
                                 "exact_quantile": r.exact_quantile,
                                 "labels": {str(x.unit): [x.concept, round(x.iou, 4), x.formula] for x in r.labels}}
    scores["ground_truth"] = ground_truth(res["conv1.hook_post"].labels)
    c = CLASSES.index(cfg.cls)
    imgs = scenes.images[scenes.labels == c].to(dev)
    metric = lambda logits: logits[:, c]  # noqa: E731
    ranked = rank_units(model, "conv3.hook_post", 32, imgs, metric, "zero", axis=1)
    order = [e.units[0] for e in ranked]
    sizes = [1, 2, 4, 8, 16, 32]
    curve = ablation_curve(model, "conv3.hook_post", order, imgs, metric, sizes, axis=1)
    rnd = torch.randperm(32, generator=torch.Generator().manual_seed(0)).tolist()
    ctrl = ablation_curve(model, "conv3.hook_post", rnd, imgs, metric, sizes, axis=1)
    scores["unit_ranking"] = [e.to_dict() for e in ranked[:8]]
    scores["ablation_curve"] = {"top": [e.to_dict() for e in curve], "random": [e.to_dict() for e in ctrl]}
    with torch.no_grad():
        all_logits = model(scenes.images.to(dev))
        exhaustive = torch.stack([model.run_with_interventions(scenes.images.to(dev), {
            "conv3.hook_post": SetUnits((u,), 1)}).sub(all_logits).mean(0) for u in range(32)])  # [units classes]
    scores["exhaustive_ablation_conv3"] = {"most_affected_class": {
        f"conv3.c{u}": CLASSES[int(exhaustive[u].argmin())] for u in range(32)}}
    scores["ground_truth"]["conv1_colour_probe"] = colour_selectivity(model, scenes, res["conv1.hook_post"].labels)
    scores["ground_truth"]["conv3_ablation_check"] = ablation_agreement(res["conv3.hook_post"].labels, exhaustive)
    gimgs = imgs[: cfg.graph_images]
    graph, tables = build_graph(model, gimgs, c, cfg.cls, top=cfg.top_paths, labels=labels)
    stabs = {f"conv{k}": stability(model, gimgs, c, k=k, top=cfg.stability_top) for k in (2, 3)}
    stab = stabs["conv3"]
    scores["stability"] = stabs
    scores["graph"] = {"nodes": len(graph.nodes), "edges": len(graph.edges),
                       "top_edges": [e.to_dict() for e in sorted(graph.edges, key=lambda e: e.score)[:6]]}
    payload = labels_payload(res, "scene-cnn", list(CONCEPTS), {"graph_labels": labels})
    pts = lambda effs: [(len(e.units), e.ace, e.ci[0], e.ci[1]) for e in effs]  # noqa: E731
    figures = {"labels": labels_figure(res),
               "ablation_curve": curve_figure({"top-ranked": pts(curve), "random": pts(ctrl)},
                                              f"Ablating conv3 channels: effect on the {cfg.cls} logit"),
               **{f"stability_{k}": stability_figure(v) for k, v in stabs.items()}}
    tensors = {f"iou/{s}": r.iou.float() for s, r in res.items()}
    tensors.update({k: v.float() for k, v in tables.items()})
    tensors["exhaustive_ablation_conv3"] = exhaustive.float()
    gt = scores["ground_truth"]
    summary = (f"vision demo: planted colour units precision {gt['precision']:.2f} recall {gt['recall']:.2f}; "
               f"graph {len(graph.nodes)} nodes {len(graph.edges)} edges; stability (Jaccard) path "
               f"{stab['mean']['path_intervention']:.2f} vs gradient {stab['mean']['gradient']:.2f} (conv3), "
               f"{stabs['conv2']['mean']['path_intervention']:.2f} vs {stabs['conv2']['mean']['gradient']:.2f} (conv2)")
    return RunOutput(result={"kind": "dissection", "method": "network_dissection+path_intervention",
                             "model": "scene-cnn", "metric": f"logit[{cfg.cls}]", "ablation": "zero",
                             "task": "synthetic-scenes", "scores": scores},
                     tensors=tensors, figures=figures,
                     files={"labels.json": json.dumps(payload), "graph.json": graph.to_json()}, summary=summary)
