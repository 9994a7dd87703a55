"""A hookable eager attention kernel, so ``attn.hook_attn_scores`` and ``attn.hook_pattern``
can be read and written on HF models whose attention runs in a fused kernel.

1. While a trace touches a pattern or score site, the model's attention implementation is
   switched (in a context manager, restored in ``finally``) to ``interpbench_eager``.
2. That kernel computes ``scores = q k^T * scale + mask`` and ``pattern = softmax(scores)``
   exactly as transformers' eager kernels do (GQA keys/values repeated per query head),
   and passes each through ``module._interpbench_attn_hook(kind, tensor)`` when the trace
   has set one on that attention module.
3. Registration with transformers' ``AttentionInterface`` happens on first use, never at
   import.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

NAME = "interpbench_eager"
HOOK_ATTR = "_interpbench_attn_hook"
_registered = False


def _repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)  # [b h*n_rep s d]


def hookable_eager_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                             attention_mask, scaling=None, dropout: float = 0.0, **kwargs):
    """query [batch n_heads q_pos d_head], key/value [batch n_kv k_pos d_head] -> ([batch q_pos n_heads d_head], pattern)."""
    n_rep = query.shape[1] // key.shape[1]
    key, value = _repeat_kv(key, n_rep), _repeat_kv(value, n_rep)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # [batch head q_pos k_pos]
    if attention_mask is not None:
        mask = attention_mask[:, :, :, : key.shape[-2]]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    hook = getattr(module, HOOK_ATTR, None)
    if hook is not None:
        scores = hook("attn_scores", scores)
    pattern = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    if hook is not None:
        pattern = hook("pattern", pattern)
    pattern_d = nn.functional.dropout(pattern, p=dropout, training=module.training)
    out = torch.matmul(pattern_d, value).transpose(1, 2).contiguous()  # [batch q_pos head d_head]
    return out, pattern


def _register() -> None:
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(NAME, hookable_eager_attention)
    AttentionMaskInterface.register(NAME, eager_mask)
    _registered = True


def _configs(model: nn.Module):
    seen = set()
    for mod in model.modules():
        cfg = getattr(mod, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation") and id(cfg) not in seen:
            seen.add(id(cfg))
            yield cfg


@contextlib.contextmanager
def hookable_attention(model: nn.Module) -> Iterator[None]:
    """Switch every config of ``model`` to the hookable kernel; restore on exit."""
    _register()
    saved = [(cfg, cfg._attn_implementation) for cfg in _configs(model)]
    try:
        for cfg, _ in saved:
            cfg._attn_implementation = NAME
        yield
    finally:
        for cfg, impl in saved:
            cfg._attn_implementation = impl
