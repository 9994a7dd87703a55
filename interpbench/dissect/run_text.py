"""Text dissection run (``interpbench dissect --model M``, recipe kind ``dissect_text``).

1. Load the model, resolve the sites (each needs a token axis), build :class:`~.text.TextData`
   (built-in concepts on the default corpus, or a JSONL annotation file).
2. :func:`~.engine.dissect` with the config's quantile / IoU threshold, cached under
   ``cache/dissect/<model>-<hash>/`` (resumable).
3. Planted ground truth (``planted: true``, built-in concepts only): one latent per
   detectable concept that is the concept's token indicator (plus jitter, see
   :func:`planted_check`); each latent must get its own concept as label.
4. Unit intervention: the ``top_units`` neurons of the first site whose label is
   ``effect_concept`` (default ``digits``) are zero-ablated together; the effect is the
   change of the mean log-probability of the true next token at positions whose next token
   has the concept, against the same count of random unlabelled neurons.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import InterpbenchError
from ..paths import cache_dir
from .engine import DissectConfig, dissect
from .text import TextData, resolve_sites, text_acts_fn
from .text_concepts import BUILTIN_CONCEPTS



@dataclass(frozen=True)
class TextDissectConfig:
    """Settings of a text dissection run."""

    model: str = "smollm2-135m"
    """Model spec (bundled name, local dir, hub id)."""
    sites: str = "blocks.*.mlp.hook_post"
    """Site name or fnmatch pattern; each site needs a token axis."""
    concepts: str = "builtin"
    """``builtin`` or a path to a concepts JSONL file (see interpbench.dissect.text_concepts)."""
    n_texts: int = 64
    """Documents of the default corpus (built-in concepts)."""
    max_len: int = 64
    """Tokens per document (BOS included)."""
    batch_size: int = 8
    """Documents per forward."""
    quantile: float = 0.995
    """Activation threshold quantile (top 0.5 %)."""
    iou_threshold: float = 0.04
    """Label a unit when its best IoU exceeds this."""
    comp_units: int = 8
    """Units per site that get compositional (AND/OR/NOT) labels."""
    planted: bool = True
    """Also run the planted-latent ground truth (built-in concepts only)."""
    effect_concept: str = "digits"
    """Concept whose labelled neurons are ablated in the intervention check."""
    top_units: int = 8
    """How many labelled neurons to ablate together."""
    device: Optional[str] = None
    """Device (None: auto)."""


def _key(cfg: TextDissectConfig, data: TextData) -> str:
    h = hashlib.sha256(json.dumps([cfg.model, cfg.sites, cfg.concepts, cfg.quantile, data.ids], default=str).encode())
    return f"{cfg.model.replace('/', '_')}-{h.hexdigest()[:12]}"


def planted_check(model, data: TextData, dcfg: DissectConfig) -> dict:
    """Step 3: precision / recall of the planted latents' labels.

    Latent ``j`` is ``1[token in concept j] + 0.01 * u`` with ``u`` uniform per token
    occurrence: a lookup on the token id (equivalently on ``hook_embed``, whose rows identify
    the token), so its concept is known by construction. Concepts covering more than ``(1 - quantile) / iou_threshold`` of the
    tokens (12.5 % at the defaults) cannot reach the IoU threshold at a top-0.5 % activation
    threshold, so the planted concepts are rarer ones.
    """
    masks = torch.cat(data.masks).float()
    freq = masks.mean(0)
    lo, hi = 1 - dcfg.quantile, (1 - dcfg.quantile) / dcfg.iou_threshold
    planted = [c for j, c in enumerate(data.concepts) if lo <= float(freq[j]) <= hi]
    if not planted:
        return {"skipped": f"no concept has a token frequency in [{lo:.3f}, {hi:.3f}]"}
    cols = [data.concepts.index(c) for c in planted]
    n_vocab = max(max(ids) for ids in data.ids) + 1
    table = torch.zeros(n_vocab, len(cols))
    for ids, m in zip(data.ids, data.masks):
        table[torch.tensor(ids[data.offset:])] = m[:, cols].float()
    table = table.to(model.device)

    def acts(inputs):
        toks, _, valid = inputs
        lat = table[toks][valid]                                  # [batch pos latents] -> [valid latents]
        g = torch.Generator().manual_seed(int(toks.sum()))        # per-occurrence jitter, same in both passes
        return {"planted": lat + 0.01 * torch.rand(lat.shape, generator=g).to(lat.device)}

    res = dissect(acts, data.batches, ["planted"], data.concepts, dcfg)
    labels = res["planted"].labels
    got = [lab.concept for lab in labels]
    tp = sum(g == want for g, want in zip(got, planted))
    labelled = sum(bool(g) for g in got)
    return {"planted": planted, "frequency": [round(float(freq[j]), 4) for j in cols], "labels": got,
            "iou": [round(lab.iou, 4) for lab in labels], "precision": tp / max(1, labelled),
            "recall": tp / len(planted)}


def concept_effect(model, data: TextData, site: str, units: list[int], concept: str, seed: int = 0) -> dict:
    """Step 4: ablate ``units`` at ``site``; change of log p(next token) where the next token has ``concept``."""
    from .ablate import unit_effect

    j = data.concepts.index(concept)
    length = min(32, max(len(x) for x in data.ids))
    docs = [i for i, x in enumerate(data.ids) if len(x) >= length]
    if not docs:
        raise InterpbenchError("no text is long enough for the intervention check")
    toks = torch.tensor([data.ids[i][:length] for i in docs], device=model.device)
    # concept of the token at each position (BOS rows: none); position p predicts token p + 1
    target = torch.zeros(len(docs), length - 1, dtype=torch.bool)
    for r, i in enumerate(docs):
        conc = torch.cat([torch.zeros(data.offset, dtype=torch.bool), data.masks[i][:, j]])[:length]
        target[r] = conc[1:]
    target = target.to(model.device)
    if not bool(target.any()):
        return {"concept": concept, "skipped": "no positions whose next token has the concept"}

    def metric(logits):
        lp = logits[:, :-1].float().log_softmax(-1).gather(-1, toks[:, 1:, None])[..., 0]  # [docs pos-1]
        return (lp * target).sum(1) / target.sum(1).clamp(min=1)

    eff, _ = unit_effect(model, site, units, toks, metric, "zero")
    g = torch.Generator().manual_seed(seed)
    n_units = model.run_with_cache(toks[:1], [site])[1][site].shape[-1]
    pool = [u for u in torch.randperm(n_units, generator=g).tolist() if u not in units][: len(units)]
    ctrl, _ = unit_effect(model, site, pool, toks, metric, "zero")
    return {"concept": concept, "site": site, "units": units, "ablate_labelled": eff.to_dict(),
            "ablate_random": ctrl.to_dict()}


def run_text(cfg: TextDissectConfig):
    """Text dissection into a run dir (see the module docstring)."""
    import interpbench
    from ..recipes import RunOutput
    from .report import labels_figure, labels_payload

    model = interpbench.load_model(cfg.model, device=cfg.device)
    sites = resolve_sites(model, cfg.sites)
    texts = None
    data = TextData(model, texts, cfg.concepts, cfg.max_len, cfg.batch_size, cfg.n_texts)
    dcfg = DissectConfig(quantile=cfg.quantile, iou_threshold=cfg.iou_threshold, comp_units=cfg.comp_units)
    res = dissect(text_acts_fn(model, sites), data.batches, sites, data.concepts, dcfg,
                  cache=cache_dir() / "dissect" / _key(cfg, data))
    scores: dict = {"n_texts": len(data), "n_tokens": int(sum(m.shape[0] for m in data.masks)),
                    "concepts": data.concepts,
                    "dropped_concepts": data.dropped, "per_site": {}}
    for s, r in res.items():
        named = [lab for lab in r.labels if lab.concept]
        counts: dict = {}
        for lab in named:
            counts[lab.concept] = counts.get(lab.concept, 0) + 1
        scores["per_site"][s] = {"units": len(r.labels), "labelled": len(named), "by_concept": counts,
                                 "exact_quantile": r.exact_quantile,
                                 "top": [lab.to_dict() for lab in sorted(r.labels, key=lambda x: -x.iou)[:10]]}
    if cfg.planted and cfg.concepts == "builtin":
        scores["planted"] = planted_check(model, data, DissectConfig(quantile=cfg.quantile,
                                                                     iou_threshold=cfg.iou_threshold))
    if cfg.concepts == "builtin" and cfg.effect_concept in data.concepts:
        first = sites[0]
        lab = sorted([x for x in res[first].labels if x.concept == cfg.effect_concept], key=lambda x: -x.iou)
        if lab:
            scores["intervention"] = concept_effect(model, data, first, [x.unit for x in lab[: cfg.top_units]],
                                                    cfg.effect_concept)
    payload = labels_payload(res, cfg.model, data.concepts, {"tokens": data.tokens})
    tensors = {f"iou/{s}": r.iou.float() for s, r in res.items()}
    tensors.update({f"thresholds/{s}": r.thresholds.float() for s, r in res.items()})
    summary = "; ".join(f"{s}: {v['labelled']}/{v['units']} labelled" for s, v in scores["per_site"].items())
    if "precision" in scores.get("planted", {}):
        summary += f"; planted precision {scores['planted']['precision']:.2f} recall {scores['planted']['recall']:.2f}"
    return RunOutput(result={"kind": "dissection", "method": "network_dissection", "model": cfg.model,
                             "metric": "iou", "ablation": "zero", "task": f"concepts:{cfg.concepts}",
                             "scores": scores},
                     tensors=tensors, figures={"labels": labels_figure(res)},
                     files={"labels.json": json.dumps(payload)}, summary=summary)
