"""The one tracing core: context-managed hooks that read (cache) and write (intervene).

1. Resolve every requested name / pattern to :class:`~interpbench.sites.Site` objects
   against the model's site map (a name that matches nothing raises at once).
2. Group the sites by (module, input-or-output) and register **one** PyTorch hook per
   group; attention pattern/score sites instead install a callback on the attention
   module and switch the model to the hookable eager kernel for the duration.
3. In each hook, for each site in forward order: take the site view of the raw tensor,
   apply that site's interventions (each sees the whole site tensor; only the site's
   index region is kept), write the result back, and cache the (post-intervention)
   value if asked.
4. On exit — also when user code or an intervention raises — remove every hook and
   callback and restore the attention kernel in ``finally``.
5. After a clean exit, every intervention and every cached site must have fired at
   least once; otherwise :class:`~interpbench.errors.SiteNeverFired` is raised.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor

from .errors import SiteError, SiteNeverFired
from .interventions import Intervention
from .models.attention import HOOK_ATTR, hookable_attention
from .models.sitemap import SiteDef, get_module
from .sites import Site, expand

if TYPE_CHECKING:  # pragma: no cover
    from .models.model import HookedModel

SiteLike = Union[str, Site]
InterventionSpec = Mapping[SiteLike, Union[Intervention, Sequence[Intervention]]]


def index_for(site: Site, axes: tuple[str, ...]) -> Optional[tuple]:
    """Tuple index selecting the site's ``head``/``pos``/``neuron`` region, or None for all."""
    if not site.has_index:
        return None
    idx: list = [slice(None)] * len(axes)
    wanted = {"head": site.head, "pos": site.pos, "neuron": site.neuron}
    for key, value in wanted.items():
        if value is None:
            continue
        axis = {"pos": "pos" if "pos" in axes else "q_pos", "neuron": axes[-1]}.get(key, key)
        if axis not in axes or (key == "neuron" and axes[-1] in ("head", "k_pos")):
            raise SiteError(f"site {site} has no {key!r} axis (its axes are {axes})")
        idx[axes.index(axis)] = value
    return tuple(idx)


def _keep_region(act: Tensor, new: Tensor, idx: Optional[tuple]) -> Tensor:
    if idx is None:
        return new
    out = act.clone()
    out[idx] = new[idx]
    return out


@dataclass
class _Entry:
    site: Site
    sdef: SiteDef
    interventions: list[Intervention] = field(default_factory=list)
    cache: bool = False


class Trace:
    """Hooks on a model for the duration of a ``with`` block.

    >>> with Trace(model, cache=["blocks.*.hook_resid_post"],
    ...            interventions={"blocks.3.attn.hook_z[head=2]": Zero()}) as tr:
    ...     logits = model(tokens)
    >>> tr.cache["blocks.0.hook_resid_post"].shape
    """

    def __init__(self, model: "HookedModel", *, cache: Optional[Iterable[SiteLike]] = None,
                 interventions: Optional[InterventionSpec] = None, detach: bool = True,
                 require_fired: bool = True):
        self.model = model
        self.detach = detach
        self.require_fired = require_fired
        self.cache: dict[str, Tensor] = {}
        self.fired: dict[str, int] = defaultdict(int)
        names = model.site_names
        self._entries: list[_Entry] = []
        for site in expand(list(cache or []), names) if cache else []:
            self._entries.append(_Entry(site, model.site_def(site.name), cache=True))
        for spec, ivs in (interventions or {}).items():
            ivs = [ivs] if isinstance(ivs, Intervention) else list(ivs)
            for iv in ivs:
                if not isinstance(iv, Intervention):
                    raise SiteError(f"intervention for {spec} must be an Intervention, got {type(iv).__name__}")
            for site in expand(spec, names):
                self._entries.append(_Entry(site, model.site_def(site.name), interventions=ivs))
        order = {n: i for i, n in enumerate(names)}
        # forward order; at one site, writes before reads so the cache holds what flowed on
        self._entries.sort(key=lambda e: (order[e.sdef.name], 0 if e.interventions else 1))
        self._handles: list = []
        self._attn_modules: list = []
        self._stack = contextlib.ExitStack()

    # -- registration -----------------------------------------------------------------
    def __enter__(self) -> "Trace":
        try:
            self._register()
        except BaseException:
            self._teardown()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._teardown()
        if exc_type is None and self.require_fired:
            self.check_fired()

    def _teardown(self) -> None:
        try:
            for h in self._handles:
                h.remove()
            for mod in self._attn_modules:
                if hasattr(mod, HOOK_ATTR):
                    delattr(mod, HOOK_ATTR)
        finally:
            self._handles.clear()
            self._attn_modules.clear()
            self._stack.close()

    def _register(self) -> None:
        groups: dict[tuple[str, str], list] = defaultdict(list)
        attn: dict[str, list[_Entry]] = defaultdict(list)
        for e in self._entries:
            sd = e.sdef
            if sd.where in ("pattern", "attn_scores"):
                attn[sd.module].append(e)
            elif sd.derived == "resid_mid" and e.interventions:
                block, o_proj = sd.aux
                stash: dict = {}
                groups[(block, "input")].append(("stash", stash))
                groups[(o_proj, "output")].append(("resid_mid", e, stash))
                if e.cache:
                    groups[(sd.module, sd.where)].append(("read", _Entry(e.site, sd, cache=True)))
            else:
                groups[(sd.module, sd.where)].append(("plain", e))
        # stash handlers must run after the block's own resid_pre handlers
        for key, items in groups.items():
            items.sort(key=lambda it: {"plain": 0, "read": 0, "stash": 1, "resid_mid": 2}[it[0]])
            mod = get_module(self.model.hf, key[0])
            if key[1] == "output":
                self._handles.append(mod.register_forward_hook(self._make_output_hook(items), with_kwargs=True))
            else:
                self._handles.append(mod.register_forward_pre_hook(self._make_input_hook(items), with_kwargs=True))
        if attn:
            self._stack.enter_context(hookable_attention(self.model.hf))
            for path, entries in attn.items():
                mod = get_module(self.model.hf, path)
                setattr(mod, HOOK_ATTR, self._make_attn_hook(entries))
                self._attn_modules.append(mod)

    # -- hook bodies ------------------------------------------------------------------
    def _apply(self, e: _Entry, act: Tensor) -> Tensor:
        if e.interventions:
            idx = index_for(e.site, e.sdef.axes)
            new = act
            for iv in e.interventions:
                new = iv(new)
                self.fired[f"{e.site}:{iv.label}"] += 1
            act = _keep_region(act, new, idx)
        if e.cache:
            idx = index_for(e.site, e.sdef.axes)
            val = act if idx is None else act[idx]
            self.cache[str(e.site)] = val.detach() if self.detach else val
        return act

    def _run_items(self, raw: Tensor, items: list, module=None) -> Tensor:
        for item in items:
            kind = item[0]
            if kind in ("plain", "read"):
                e = item[1]
                act = e.sdef.get(raw, module)
                new = self._apply(e, act)
                if new is not act:
                    raw = e.sdef.put(raw, new, module)
            elif kind == "stash":
                item[1]["resid_pre"] = raw
            elif kind == "resid_mid":
                e, stash = item[1], item[2]
                base = stash.pop("resid_pre")
                mid = base + raw
                e_nocache = _Entry(e.site, e.sdef, e.interventions)
                new_mid = self._apply(e_nocache, mid)
                raw = new_mid - base
        return raw

    def _make_output_hook(self, items: list):
        def hook(module, args, kwargs, output):
            raw = output[0] if isinstance(output, tuple) else output
            new = self._run_items(raw, items, module)
            if new is raw:
                return None
            return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
        return hook

    def _make_input_hook(self, items: list):
        def hook(module, args, kwargs):
            if args:
                raw = args[0]
                new = self._run_items(raw, items, module)
                return None if new is raw else ((new,) + tuple(args[1:]), kwargs)
            raw = kwargs["hidden_states"]
            new = self._run_items(raw, items, module)
            return None if new is raw else (args, {**kwargs, "hidden_states": new})
        return hook

    def _make_attn_hook(self, entries: list[_Entry]):
        def hook(kind: str, tensor: Tensor) -> Tensor:
            for e in entries:
                if e.sdef.where == kind:
                    tensor = self._apply(e, tensor)
            return tensor
        return hook

    # -- reporting --------------------------------------------------------------------
    def check_fired(self) -> None:
        missing = [f"{e.site}:{iv.label}" for e in self._entries for iv in e.interventions
                   if self.fired.get(f"{e.site}:{iv.label}", 0) == 0]
        missing += [str(e.site) for e in self._entries if e.cache and str(e.site) not in self.cache]
        if missing:
            raise SiteNeverFired(f"never reached during the forward: {', '.join(sorted(set(missing)))}; "
                                 f"the model did not execute these sites (check the site names and the input)")

    @property
    def report(self) -> dict[str, int]:
        """How many times each intervention fired, keyed ``'site:Label'``."""
        return dict(self.fired)


def leftover_hooks(module: torch.nn.Module) -> int:
    """Number of forward hooks / pre-hooks left on ``module`` and its children (leak check)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())
