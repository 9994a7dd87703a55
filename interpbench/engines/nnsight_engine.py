"""The nnsight engine: the same Sites and Interventions, executed by nnsight 0.8.

nnsight is the engine for what plain hooks do badly: interventions at every step of
``generate()`` and (through NDIF) remote execution of models too large for one machine.
It consumes the same objects as the hook engine — :class:`~interpbench.sites.Site`,
:class:`~interpbench.interventions.Intervention`, and the site map's ``SiteDef.get/put``
— so there is no second copy of any algorithm, only a second way to reach the tensors.

1. Wrap the HF module once in ``nnsight.modeling.transformers.TransformersModel``
   (cached on the HookedModel; the tokenizer's padding side is restored afterwards,
   since nnsight sets it to left).
2. Inside ``model.trace`` / ``model.generate``, visit the requested sites' modules in
   forward order (nnsight requires execution order), read ``.output`` / ``.input``,
   apply the interventions through ``SiteDef.get`` → interventions → ``SiteDef.put``,
   and write the value back.
3. Attention pattern/score sites and writes to the derived pre-norm ``resid_mid`` are
   hook-engine only; asking for them here is an error that says so.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

from ..errors import InterpbenchError
from ..interventions import Intervention
from ..sites import expand
from ..tracing import _keep_region, index_for

if TYPE_CHECKING:  # pragma: no cover
    from ..models.model import HookedModel


def nnsight_model(model: "HookedModel"):
    """The model wrapped for nnsight (created once, cached on the HookedModel)."""
    nm = getattr(model, "_nnsight", None)
    if nm is None:
        from nnsight.modeling.transformers import TransformersModel

        side = getattr(model.tokenizer, "padding_side", None)
        nm = TransformersModel(model.hf, tokenizer=model.tokenizer)
        if side is not None:
            model.tokenizer.padding_side = side
        model._nnsight = nm
    return nm


def _envoy(nm, path: str):
    env = nm
    for part in path.split("."):
        env = env[int(part)] if part.isdigit() else getattr(env, part)
    return env


def _plan(model: "HookedModel", interventions: dict, cache: Optional[list]):
    """Group sites by (module, side) in forward order: [(module, side, [(site, sdef, ivs, cache?)])]."""
    entries = []
    for spec, ivs in (interventions or {}).items():
        ivs = [ivs] if isinstance(ivs, Intervention) else list(ivs)
        for site in expand(spec, model.site_names):
            entries.append((site, model.site_def(site.name), ivs, False))
    for site in expand(cache, model.site_names) if cache else []:
        entries.append((site, model.site_def(site.name), [], True))
    order = {n: i for i, n in enumerate(model.site_names)}
    entries.sort(key=lambda e: order[e[1].name])
    groups: "OrderedDict[tuple[str, str], list]" = OrderedDict()
    for site, sd, ivs, want in entries:
        if sd.where in ("pattern", "attn_scores"):
            raise InterpbenchError(f"{site} is computed inside the attention kernel; the nnsight engine cannot "
                                   f"reach it — use the hook engine (model.trace / run_with_interventions)")
        if sd.derived and ivs:
            raise InterpbenchError(f"writing {site} needs the hook engine (it is not a module output on this "
                                   f"architecture); use model.run_with_interventions")
        groups.setdefault((sd.module, sd.where), []).append((site, sd, ivs, want))
    return list(groups.items())


def _apply_group(raw: Tensor, items: list, saved: dict, module) -> Tensor:
    for site, sd, ivs, want in items:
        act = sd.get(raw, module)
        if ivs:
            new = act
            for iv in ivs:
                new = iv(new)
            act = _keep_region(act, new, index_for(site, sd.axes))
            raw = sd.put(raw, act, module)
        if want:
            idx = index_for(site, sd.axes)
            saved[str(site)] = (act if idx is None else act[idx]).save()
    return raw


def _visit(nm, plan, saved: dict, root) -> None:
    for (path, where), items in plan:
        env = _envoy(nm, path)
        module = root.get_submodule(path)
        if where == "output":
            out = env.output
            raw = out[0] if isinstance(out, tuple) else out
            new = _apply_group(raw, items, saved, module)
            if new is not raw:
                env.output = (new,) + tuple(out[1:]) if isinstance(out, tuple) else new
        else:
            raw = env.input
            new = _apply_group(raw, items, saved, module)
            if new is not raw:
                env.input = new


def run_with_nnsight(model: "HookedModel", tokens, interventions: Optional[dict] = None,
                     cache: Optional[list] = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Logits and cache like ``run_with_cache``, executed by nnsight."""
    nm = nnsight_model(model)
    ids = model.to_tokens(tokens)
    plan = _plan(model, interventions or {}, cache)
    saved: dict = {}
    with torch.no_grad(), nm.trace(ids):
        _visit(nm, plan, saved, model.hf)
        logits = nm.output.logits.save()
    return logits, {k: v for k, v in saved.items()}


def generate_with_interventions(model: "HookedModel", ids: Tensor, interventions: dict,
                                max_new_tokens: int = 20) -> Tensor:
    """Greedy generation with the interventions applied at every step (prompt and new tokens).

    Position indices refer to the tensor of each step: the prompt pass sees every prompt
    position, later steps see only the newest token (so ``pos=-1`` follows the end).
    """
    nm = nnsight_model(model)
    plan = _plan(model, interventions, None)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else model.tokenizer.eos_token_id
    with torch.no_grad(), nm.generate(ids, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                                      do_sample=False, pad_token_id=pad) as tracer:
        for _step in tracer.iter[0:max_new_tokens]:
            _visit(nm, plan, {}, model.hf)
        result = tracer.result.save()
    return result
