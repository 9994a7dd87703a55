"""Exact edge ablation on the attention-only model, written out by hand (no hooks).

Used to establish the induction model's true circuit; independent of the graph methods
it is later used to judge.

1. Nodes: ``input`` (token + position embeddings), every head ``a{l}.h{h}`` (its output
   ``z_h @ W_O[:, h].T`` into the residual stream), ``logits``. Receivers: the ports
   ``a{l}.h{h}<q|k|v>`` of every head and ``logits``.
2. :func:`node_outputs` runs the model normally and returns each sender's output
   ``[batch pos d_model]``; their sum is the residual stream feeding each layer.
3. :func:`edge_forward` recomputes the model where each receiver port gets its own
   residual input ``sum_u (out_u if (u -> port) is kept else ablated_u)`` (then its own
   norm, a LayerNorm or an identity, and projection), so ablating one edge changes exactly
   one receiver's input.
4. Ablated sender values: zeros (zero), the clean batch mean per position (mean), or the
   sender's output on the corrupted prompts (resample).
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from .attn_only import AttnOnlyTransformer
from .nodes import candidate_edges, head_id

PORTS = ("q", "k", "v")


def all_edges(n_layers: int, n_heads: int) -> list[tuple[str, str]]:
    """Every (sender, receiver) edge of an attention-only model, in forward order."""
    return candidate_edges(n_layers, n_heads, mlp=False)


def _head_weights(model: AttnOnlyTransformer, l: int, h: int):
    a, dh = model.blocks[l].attn, model.cfg.d_head
    sl = slice(h * dh, (h + 1) * dh)
    return a.q_proj.weight[sl], a.k_proj.weight[sl], a.v_proj.weight[sl], a.o_proj.weight[:, sl]


def _head_out(model, l, h, xq, xk, xv) -> Tensor:
    """Output of head (l, h) into the residual given the residual inputs of its three ports."""
    ln = model.blocks[l].ln1
    wq, wk, wv, wo = _head_weights(model, l, h)
    q, k, v = ln(xq) @ wq.T, ln(xk) @ wk.T, ln(xv) @ wv.T  # [b p d_head]
    n = q.shape[1]
    scores = q @ k.transpose(1, 2) * model.cfg.d_head ** -0.5  # [b q k]
    causal = torch.ones(n, n, dtype=torch.bool, device=q.device).tril()
    pattern = scores.masked_fill(~causal, torch.finfo(scores.dtype).min).softmax(-1)
    return (pattern @ v) @ wo.T  # [b p d_model]


@torch.no_grad()
def node_outputs(model: AttnOnlyTransformer, tokens: Tensor) -> dict[str, Tensor]:
    """Each sender's output ``[batch pos d_model]`` in a normal forward."""
    return _run(model, tokens, None, None)[1]


def _run(model, tokens, ablated: Optional[dict], off: Optional[set]):
    b, n = tokens.shape
    pos = torch.arange(n, device=tokens.device).expand(b, n)
    outs = {"input": model.embed(tokens) + model.pos_embed(pos)}
    cfg = model.cfg

    def resid_for(receiver: str, senders: list[str]) -> Tensor:
        return sum(ablated[u] if off and (u, receiver) in off else outs[u] for u in senders)

    for l in range(cfg.n_layers):
        senders = ["input"] + [head_id(j, h) for j in range(l) for h in range(cfg.n_heads)]
        new = {}
        for h in range(cfg.n_heads):
            xs = [resid_for(f"{head_id(l, h)}<{p}>", senders) for p in PORTS]
            new[head_id(l, h)] = _head_out(model, l, h, *xs)
        outs.update(new)
    senders = ["input"] + [head_id(j, h) for j in range(cfg.n_layers) for h in range(cfg.n_heads)]
    logits = model.unembed(model.ln_final(resid_for("logits", senders)))
    return logits, outs


@torch.no_grad()
def edge_forward(model: AttnOnlyTransformer, tokens: Tensor, ablated: dict[str, Tensor],
                 off: Iterable[tuple[str, str]]) -> Tensor:
    """Logits ``[batch pos vocab]`` with the edges in ``off`` fed ``ablated[sender]`` instead."""
    return _run(model, tokens, ablated, set(off))[0]


def ablated_values(model: AttnOnlyTransformer, clean: Tensor, corrupted: Tensor, kind: str) -> dict[str, Tensor]:
    """Sender values used when an edge is ablated: ``zero``, ``mean`` or ``resample``."""
    outs = node_outputs(model, clean)
    if kind == "zero":
        return {k: torch.zeros_like(v) for k, v in outs.items()}
    if kind == "mean":
        return {k: v.mean(0, keepdim=True).expand_as(v) for k, v in outs.items()}
    if kind == "resample":
        return node_outputs(model, corrupted)
    raise ValueError(f"unknown ablation {kind!r}: use zero, mean or resample")


def answer_logprob(logits: Tensor, answer: Tensor) -> Tensor:
    """Log-probability of ``answer`` at the last position, ``[batch]``."""
    return F.log_softmax(logits[:, -1], dim=-1).gather(-1, answer[:, None])[:, 0]
