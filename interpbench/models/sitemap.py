"""Site maps: which module, which side of it (input or output) and which view is each site.

The module paths come from transformer-lens 4.x's architecture adapters (the same table
``TransformerBridge`` uses), so any architecture the bridge supports gets TransformerLens
hook names here without a hand-written adapter. We register plain PyTorch hooks on those
modules instead of running the model through the bridge: the bridge wraps every
submodule in Python hook points (and forces eager attention), which costs more than the
≤ 10 % tracing overhead we allow. The semantics below are checked against the bridge's
``run_with_cache`` in ``tests/test_parity.py``.

A :class:`SiteDef` says how to get the site's tensor from a module call and how to put a
new one back:

1. ``where="output"`` / ``"input"``: the module's output (first element if a tuple) or its
   first positional input (``hidden_states``);
2. ``part=(a, b)``: a slice of the last axis (GPT-2's fused ``c_attn`` holds q|k|v);
3. ``n_heads``: the last axis split into ``[n_heads d_head]``;
4. ``where="pattern"`` / ``"attn_scores"``: produced inside attention by the hookable
   eager kernel in :mod:`interpbench.models.attention`;
5. ``derived="resid_mid"``: for pre-norm blocks, read as the input of ``ln2``, written
   as a change of the attention output (``attn_out' = f(resid_pre + attn_out) - resid_pre``),
   because the residual stream after attention is not the output of any module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn

from ..errors import ModelLoadError


@dataclass(frozen=True)
class SiteDef:
    """How one site maps onto a module call."""

    name: str
    """Canonical TransformerLens-style name, e.g. ``blocks.3.attn.hook_z``."""
    module: str
    """Dotted path of the module in the wrapped torch model."""
    where: str
    """``output``, ``input``, ``pattern`` or ``attn_scores``."""
    axes: tuple[str, ...]
    """Axis names of the site tensor, from the glossary in :mod:`interpbench.sites`."""
    layer: Optional[int] = None
    """Block index, or None for sites outside the blocks."""
    n_heads: Optional[int] = None
    """Split the last axis into ``[n_heads d_head]`` (per-head sites)."""
    part: Optional[tuple[int, int]] = None
    """Slice ``[a, b)`` of the last axis taken before the head split (fused qkv)."""
    derived: Optional[str] = None
    """``resid_mid`` for the pre-norm residual after attention (see module docstring)."""
    aux: tuple[str, ...] = ()
    """Extra module paths a derived site needs: (block, attention output projection)."""
    affine: bool = False
    """Norm output with the gain/bias removed (TransformerLens ``hook_normalized``: x / scale)."""

    def get(self, raw: Tensor, module: Optional[nn.Module] = None) -> Tensor:
        """Site tensor from the raw module tensor (``module`` is needed for ``affine`` sites)."""
        x = raw
        if self.affine:
            bias = getattr(module, "bias", None)
            x = (x - bias if bias is not None else x) / module.weight
        if self.part is not None:
            x = x[..., self.part[0]:self.part[1]]
        if self.n_heads is not None:
            x = x.unflatten(-1, (self.n_heads, -1))  # [... d] -> [... n_heads d_head]
        return x

    def put(self, raw: Tensor, value: Tensor, module: Optional[nn.Module] = None) -> Tensor:
        """New raw module tensor with the site's part replaced by ``value``."""
        if self.affine:
            bias = getattr(module, "bias", None)
            value = value * module.weight
            return value + bias if bias is not None else value
        if self.n_heads is not None:
            value = value.flatten(-2)  # [... n_heads d_head] -> [... n_heads*d_head]
        if self.part is not None:
            a, b = self.part
            value = torch.cat([raw[..., :a], value, raw[..., b:]], dim=-1)
        return value


def get_module(root: nn.Module, path: str) -> nn.Module:
    mod = root
    for part in path.split("."):
        mod = mod[int(part)] if part.isdigit() else getattr(mod, part)
    return mod


def _resolve(root: nn.Module, path: Optional[str]) -> Optional[str]:
    """Path as given, or without its first component (bare base models lack the prefix)."""
    if path is None:
        return None
    for cand in (path, path.split(".", 1)[1] if "." in path else None):
        if cand is None:
            continue
        try:
            get_module(root, cand)
            return cand
        except (AttributeError, IndexError, TypeError):
            continue
    return None


def adapter_roles(hf_model: nn.Module) -> dict:
    """Module paths by role from transformer-lens's architecture adapter for this HF model."""
    try:
        from transformer_lens.model_bridge.sources.transformers.source import (
            build_bridge_config_from_hf,
            determine_architecture_from_hf_config,
        )
        from transformer_lens.factories.architecture_adapter_factory import ArchitectureAdapterFactory
    except ImportError as exc:  # pragma: no cover - depends on the installed transformer-lens
        raise ModelLoadError(f"transformer-lens 4.x is needed for HF site maps ({exc}); "
                             f"reinstall with `make install`") from None
    import copy
    import logging

    cfg = copy.deepcopy(hf_model.config)
    logging.getLogger("transformer_lens").setLevel(logging.ERROR)
    arch = determine_architecture_from_hf_config(cfg)
    bcfg = build_bridge_config_from_hf(cfg, arch, getattr(cfg, "_name_or_path", "local") or "local", torch.float32)
    adapter = ArchitectureAdapterFactory.select_architecture_adapter(bcfg)
    cm = adapter.component_mapping
    roles: dict[str, Optional[str]] = {"arch": arch}
    for key in ("embed", "pos_embed", "ln_final", "unembed"):
        roles[key] = cm[key].name if key in cm else None
    blocks = cm["blocks"]
    roles["blocks"] = blocks.name
    subs = blocks.submodules
    for key in ("ln1", "ln2"):
        roles[key] = subs[key].name if key in subs else None
    for group in ("attn", "mlp"):
        comp = subs.get(group)
        base = comp.name if comp is not None else None
        roles[group] = base
        for sub, child in ((comp.submodules or {}).items() if comp is not None else []):
            roles[f"{group}.{sub}"] = f"{base}.{child.name}" if base else child.name
    return roles


def _n(cfg, *names, default=None):
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return v
    return default


def build_hf_sitemap(hf_model: nn.Module) -> tuple[list[SiteDef], dict]:
    """All sites of an HF transformer, in forward order, plus the roles table."""
    roles = adapter_roles(hf_model)
    cfg = hf_model.config
    n_layers = _n(cfg, "num_hidden_layers", "n_layer")
    n_heads = _n(cfg, "num_attention_heads", "n_head")
    d_model = _n(cfg, "hidden_size", "n_embd")
    n_kv = _n(cfg, "num_key_value_heads", default=n_heads)
    d_head = _n(cfg, "head_dim", default=d_model // n_heads)

    def path(role: str) -> Optional[str]:
        return _resolve(hf_model, roles.get(role))

    blocks = path("blocks")
    if blocks is None or n_layers is None:
        raise ModelLoadError(f"cannot find the transformer blocks of {type(hf_model).__name__}; "
                             f"pass site_map= to load_model")
    out: list[SiteDef] = []
    resid = ("batch", "pos", "d_model")
    heads = ("batch", "pos", "head", "d_head")
    if path("embed"):
        out.append(SiteDef("hook_embed", path("embed"), "output", resid))
    if path("pos_embed"):
        out.append(SiteDef("hook_pos_embed", path("pos_embed"), "output", resid))
    post_norm = roles.get("arch", "").startswith("Bert")

    def sub(layer: int, role: str) -> Optional[str]:
        rel = roles.get(role)
        if rel is None:
            return None
        p = f"{blocks}.{layer}.{rel}"
        return p if _resolve(hf_model, p) == p else None

    for layer in range(n_layers):
        b = f"{blocks}.{layer}"
        L = f"blocks.{layer}"
        defs = [SiteDef(f"{L}.hook_resid_pre", b, "input", resid, layer)]
        if not post_norm and sub(layer, "ln1"):
            defs.append(SiteDef(f"{L}.ln1.hook_normalized", sub(layer, "ln1"), "output", resid, layer, affine=True))
        if sub(layer, "attn.q"):
            defs += [
                SiteDef(f"{L}.attn.hook_q", sub(layer, "attn.q"), "output", heads, layer, n_heads),
                SiteDef(f"{L}.attn.hook_k", sub(layer, "attn.k"), "output", heads, layer, n_kv),
                SiteDef(f"{L}.attn.hook_v", sub(layer, "attn.v"), "output", heads, layer, n_kv),
            ]
        elif sub(layer, "attn.qkv"):
            qkv = sub(layer, "attn.qkv")
            dq, dk = n_heads * d_head, n_kv * d_head
            defs += [
                SiteDef(f"{L}.attn.hook_q", qkv, "output", heads, layer, n_heads, (0, dq)),
                SiteDef(f"{L}.attn.hook_k", qkv, "output", heads, layer, n_kv, (dq, dq + dk)),
                SiteDef(f"{L}.attn.hook_v", qkv, "output", heads, layer, n_kv, (dq + dk, dq + 2 * dk)),
            ]
        core = _attention_core(hf_model, b)
        if core is not None:
            pat = ("batch", "head", "q_pos", "k_pos")
            defs += [SiteDef(f"{L}.attn.hook_attn_scores", core, "attn_scores", pat, layer),
                     SiteDef(f"{L}.attn.hook_pattern", core, "pattern", pat, layer)]
        o = sub(layer, "attn.o")
        defs.append(SiteDef(f"{L}.attn.hook_z", o, "input", heads, layer, n_heads))
        defs.append(SiteDef(f"{L}.hook_attn_out", o, "output", resid, layer))
        if post_norm:
            defs.append(SiteDef(f"{L}.hook_resid_mid", sub(layer, "ln1"), "output", resid, layer))
        elif sub(layer, "ln2"):
            defs.append(SiteDef(f"{L}.hook_resid_mid", sub(layer, "ln2"), "input", resid, layer,
                                derived="resid_mid", aux=(b, o)))
            defs.append(SiteDef(f"{L}.ln2.hook_normalized", sub(layer, "ln2"), "output", resid, layer, affine=True))
        mlp = ("batch", "pos", "d_mlp")
        if sub(layer, "mlp.gate"):
            defs.append(SiteDef(f"{L}.mlp.hook_pre", sub(layer, "mlp.gate"), "output", mlp, layer))
            defs.append(SiteDef(f"{L}.mlp.hook_pre_linear", sub(layer, "mlp.in"), "output", mlp, layer))
        elif sub(layer, "mlp.in"):
            defs.append(SiteDef(f"{L}.mlp.hook_pre", sub(layer, "mlp.in"), "output", mlp, layer))
        if sub(layer, "mlp.out"):
            defs.append(SiteDef(f"{L}.mlp.hook_post", sub(layer, "mlp.out"), "input", mlp, layer))
            defs.append(SiteDef(f"{L}.hook_mlp_out", sub(layer, "mlp.out"), "output", resid, layer))
        defs.append(SiteDef(f"{L}.hook_resid_post", b, "output", resid, layer))
        out += [d for d in defs if d.module is not None]
    if path("ln_final"):
        out.append(SiteDef("ln_final.hook_normalized", path("ln_final"), "output", resid, affine=True))
    return out, roles


def _attention_core(root: nn.Module, block: str) -> Optional[str]:
    """Path of the module that calls the attention kernel (has ``config`` and ``forward`` with q/k/v)."""
    for rel in ("self_attn", "attn", "attention.self"):
        p = f"{block}.{rel}"
        if _resolve(root, p) == p:
            mod = get_module(root, p)
            if hasattr(mod, "config") or hasattr(mod, "scaling"):
                return p
    return None
