"""The edge-level forward: every receiver port reads its own copy of the residual stream.

This is the one place where edges become computation; EAP, EAP-IG, ACDC, the verify step
and faithfulness all run through :func:`run_edges`.

Senders and receivers (EAP-IG / MIB convention, :class:`Components`):
  senders   ``input`` (= ``blocks.0.hook_resid_pre``: token (+ position) embeddings),
            ``a{l}.h{h}`` (head output ``z_h @ W_O_h``, TransformerLens' ``hook_result``,
            from ``attn.hook_z`` and the output projection), ``m{l}`` (``hook_mlp_out``);
  receivers ``a{l}.h{h}<q>`` (one per query head), ``a{l}.h{j}<k>``/``<v>`` (one per
            **KV head** j under GQA), ``m{l}`` (the MLP input = ``ln2`` input), ``logits``
            (the final residual, ``blocks.{L-1}.hook_resid_post``).
The residual stream at any point is the sum of the sender outputs before it (plus
constant biases), so a receiver's input with a set of edges ablated is well defined.

Algorithm of one :func:`run_edges` forward (one pass of the model, hooks via the tracing
core, nothing else touches the model):
1. Cache (with gradients) each layer's ``hook_resid_pre``, ``attn.hook_z``,
   ``hook_resid_mid`` and ``hook_mlp_out`` as the forward reaches them; sender outputs are
   built from them lazily (head outputs with the output-projection weights).
2. At layer l's ``attn.hook_q`` (first of q/k/v to fire) build, for every port r of the
   layer, ``x_r = resid_pre - sum_u M[u, r] (s_u - ref_u) + probe_r`` where ``s_u`` is
   sender u's output *in this run*, ``ref_u`` its corrupted / mean / zero output and ``M``
   the ablation mask (1 = edge ablated; fractional values interpolate; shape
   ``[senders receivers]`` or per position ``[pos senders receivers]``). Then
   ``q_h = split_h(W_q(ln1(x_{h,q})))`` for each head h (likewise k_j, v_j per KV head),
   i.e. ln1 and the projections are recomputed per port (``module.forward``, which runs no
   hooks), and the results replace ``hook_q``/``hook_k``/``hook_v``.
3. At ``ln2.hook_normalized`` the MLP port reads ``ln2(x_m)`` with ``x_m`` built the same
   way from ``hook_resid_mid``; at the last ``hook_resid_post`` the logits port reads
   ``x_logits``.
4. ``probe`` is an optional zero tensor ``[batch pos receivers d_model]`` with
   ``requires_grad``: its gradient is ``d metric / d (input of receiver r)``, the receiver
   gradient EAP needs, for all receivers in one backward pass.
Patching every edge reproduces the corrupted run and patching none the clean run (tested
to 1e-5). Assumes q/k/v projections read ``ln1``'s output (or ``resid_pre`` when the model
has no ``ln1`` site) and the MLP reads ``ln2``'s output.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import torch
from jaxtyping import Float
from torch import Tensor, nn

from ..errors import InterpbenchError
from ..interventions import Replace


@dataclass(frozen=True)
class Components:
    """Sender and receiver ids of a model's component graph, in forward order."""

    n_layers: int
    """Blocks."""
    n_heads: int
    """Query heads per layer."""
    n_kv: int
    """KV heads per layer (GQA: k/v port indices are KV-head indices)."""
    has_mlp: bool
    """False for attention-only models."""

    @cached_property
    def senders(self) -> tuple[str, ...]:
        out = ["input"]
        for l in range(self.n_layers):
            out += [f"a{l}.h{h}" for h in range(self.n_heads)]
            if self.has_mlp:
                out.append(f"m{l}")
        return tuple(out)

    @cached_property
    def receivers(self) -> tuple[str, ...]:
        out = []
        for l in range(self.n_layers):
            out += [f"a{l}.h{h}<q>" for h in range(self.n_heads)]
            out += [f"a{l}.h{j}<k>" for j in range(self.n_kv)]
            out += [f"a{l}.h{j}<v>" for j in range(self.n_kv)]
            if self.has_mlp:
                out.append(f"m{l}")
        return tuple(out + ["logits"])

    @property
    def per_layer_senders(self) -> int:
        return self.n_heads + int(self.has_mlp)

    @property
    def per_layer_receivers(self) -> int:
        return self.n_heads + 2 * self.n_kv + int(self.has_mlp)

    def sender_range(self, layer: int, kind: str) -> tuple[int, int]:
        """Index range of layer's heads (``kind='attn'``) or MLP (``'mlp'``) in :attr:`senders`."""
        a = 1 + layer * self.per_layer_senders
        return (a, a + self.n_heads) if kind == "attn" else (a + self.n_heads, a + self.n_heads + 1)

    def receiver_range(self, layer: int, kind: str) -> tuple[int, int]:
        """Index range of layer's q|k|v ports (``'attn'``) or MLP port (``'mlp'``) in :attr:`receivers`."""
        a = layer * self.per_layer_receivers
        n = self.n_heads + 2 * self.n_kv
        return (a, a + n) if kind == "attn" else (a + n, a + n + 1)

    def n_senders_before(self, layer: int, kind: str) -> int:
        """Senders whose output reaches layer's attention (``'attn'``), MLP (``'mlp'``) or the logits."""
        if kind == "logits":
            return len(self.senders)
        return self.sender_range(layer, "attn")[0] if kind == "attn" else self.sender_range(layer, "attn")[1]

    @cached_property
    def valid(self) -> Tensor:
        """Bool ``[senders receivers]``: True where the sender comes before the receiver."""
        v = torch.zeros(len(self.senders), len(self.receivers), dtype=torch.bool)
        for l in range(self.n_layers):
            a, b = self.receiver_range(l, "attn")
            v[: self.n_senders_before(l, "attn"), a:b] = True
            if self.has_mlp:
                a, b = self.receiver_range(l, "mlp")
                v[: self.n_senders_before(l, "mlp"), a:b] = True
        v[:, -1] = True
        return v

    @property
    def n_edges(self) -> int:
        return int(self.valid.sum())

    def edge_list(self) -> list[tuple[int, int]]:
        """(sender index, receiver index) of every valid edge, sender-major order."""
        return [tuple(x) for x in self.valid.nonzero().tolist()]

    def to_dict(self) -> dict:
        return {"n_layers": self.n_layers, "n_heads": self.n_heads, "n_kv_heads": self.n_kv, "has_mlp": self.has_mlp}


def components(model) -> Components:
    """The component graph of a model (checks that the sites the engine needs exist)."""
    names = set(model.site_names)
    c = model.cfg
    need = ["blocks.0.hook_resid_pre", "blocks.0.attn.hook_q", "blocks.0.attn.hook_k", "blocks.0.attn.hook_v",
            "blocks.0.attn.hook_z", f"blocks.{c.n_layers - 1}.hook_resid_post"]
    missing = [n for n in need if n not in names]
    if missing:
        raise InterpbenchError(f"model {c.name} lacks sites {missing} needed for edge-level graphs "
                               f"(component graphs need per-head q/k/v/z sites and the residual stream)")
    has_mlp = "blocks.0.hook_mlp_out" in names
    if has_mlp and "blocks.0.ln2.hook_normalized" not in names:
        raise InterpbenchError(f"model {c.name} has MLPs but no ln2 site; edge-level graphs need the MLP input")
    return Components(c.n_layers, c.n_heads, c.n_kv_heads, has_mlp)


def head_out_weight(model, layer: int) -> Float[Tensor, "n_heads d_head d_model"]:
    """Per-head output projection ``W_O`` so that head h writes ``z_h @ W[h]`` to the residual."""
    mod = model.hf.get_submodule(model.site_def(f"blocks.{layer}.attn.hook_z").module)
    w = mod.weight
    w = w.T if isinstance(mod, nn.Linear) else w  # Linear: [out in]; GPT-2 Conv1D: [in out]
    return w.reshape(model.cfg.n_heads, -1, w.shape[-1])  # [n_heads*d_head d_model] -> [n_heads d_head d_model]


def head_outputs(model, layer: int, z: Tensor) -> Float[Tensor, "batch pos n_heads d_model"]:
    return torch.einsum("bphk,hkd->bphd", z, head_out_weight(model, layer).to(z.dtype))


def _module(model, site: str) -> Optional[nn.Module]:
    if site not in model.site_names:
        return None
    return model.hf.get_submodule(model.site_def(site).module)


@torch.no_grad()
def sender_outputs(model, comp: Components, tokens: Tensor, return_logits: bool = False):
    """Output of every sender on ``tokens`` ``[batch pos senders d_model]`` (one forward, no
    gradients); with ``return_logits``, ``(outputs, logits)`` of that same forward."""
    L = comp.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.attn.hook_z" for l in range(L)]
    names += [f"blocks.{l}.hook_mlp_out" for l in range(L)] if comp.has_mlp else []
    logits, cache = model.run_with_cache(tokens, names=names)
    parts = [cache["blocks.0.hook_resid_pre"][:, :, None]]
    for l in range(L):
        parts.append(head_outputs(model, l, cache[f"blocks.{l}.attn.hook_z"]))
        if comp.has_mlp:
            parts.append(cache[f"blocks.{l}.hook_mlp_out"][:, :, None])
    out = torch.cat(parts, dim=2)  # [batch pos senders d_model]
    return (out, logits) if return_logits else out


class _EdgeRun:
    """State of one :func:`run_edges` forward (closures of the Replace interventions)."""

    def __init__(self, model, comp: Components, mask, ref, probes, input_value):
        self.model, self.comp = model, comp
        self.mask, self.ref, self.probes, self.input_value = mask, ref, probes, input_value
        self.cache: dict[str, Tensor] = {}
        self.chunks: list[Tensor] = []  # sender outputs in this run, [batch pos k d_model] groups
        self.ports: dict[int, tuple[Tensor, Tensor, Tensor]] = {}
        self.live: Optional[Tensor] = None
        if mask is not None and not mask.requires_grad:
            m = mask if mask.ndim == 2 else mask.abs().sum(0)
            self.live = (m != 0).cpu()  # one host sync before the forward, never inside it
        self.ln1 = [_module(model, f"blocks.{l}.ln1.hook_normalized") for l in range(comp.n_layers)]
        self.ln2 = [_module(model, f"blocks.{l}.ln2.hook_normalized") for l in range(comp.n_layers)]

    # -- senders ------------------------------------------------------------------------
    def _senders(self, n: int) -> list[tuple[int, Tensor]]:
        """(start index, outputs) chunks covering the first ``n`` senders of this run."""
        c = self.comp
        while sum(x.shape[2] for x in self.chunks) < n:
            k = len(self.chunks)
            if k == 0:
                x = self.input_value if self.input_value is not None else self.cache["blocks.0.hook_resid_pre"]
                self.chunks.append(x[:, :, None])
                continue
            layer, which = divmod(k - 1, 2 if c.has_mlp else 1)
            if which == 0:
                self.chunks.append(head_outputs(self.model, layer, self.cache[f"blocks.{layer}.attn.hook_z"]))
            else:
                self.chunks.append(self.cache[f"blocks.{layer}.hook_mlp_out"][:, :, None])
        out, start = [], 0
        for ch in self.chunks:
            if start >= n:
                break
            out.append((start, ch))
            start += ch.shape[2]
        return out

    def _delta(self, n_senders: int, r0: int, r1: int) -> Optional[Tensor]:
        """``sum_u M[u, r] (s_u - ref_u)`` for receivers r0:r1 -> [batch pos r d_model], or None."""
        if self.mask is None:
            return None
        total = None
        for start, ch in self._senders(n_senders):
            stop = start + ch.shape[2]
            if self.live is not None and not bool(self.live[start:stop, r0:r1].any()):
                continue
            diff = ch - self.ref[:, :, start:stop]
            if self.mask.ndim == 2:
                d = torch.einsum("bpsd,sr->bprd", diff, self.mask[start:stop, r0:r1].to(diff.dtype))
            else:
                d = torch.einsum("bpsd,psr->bprd", diff, self.mask[:, start:stop, r0:r1].to(diff.dtype))
            total = d if total is None else total + d
        return total

    def _port_inputs(self, base: Tensor, n_senders: int, r0: int, r1: int) -> Tensor:
        x = base[:, :, None, :].expand(-1, -1, r1 - r0, -1)  # [batch pos ports d_model]
        d = self._delta(n_senders, r0, r1)
        if d is not None:
            x = x - d
        if self.probes is not None:
            x = x + self.probes[:, :, r0:r1]
        return x

    # -- receivers ----------------------------------------------------------------------
    def _attn_ports(self, layer: int) -> tuple[Tensor, Tensor, Tensor]:
        if layer not in self.ports:
            c, m = self.comp, self.model
            r0, r1 = c.receiver_range(layer, "attn")
            x = self._port_inputs(self.cache[f"blocks.{layer}.hook_resid_pre"], c.n_senders_before(layer, "attn"), r0, r1)
            ln = self.ln1[layer].forward(x) if self.ln1[layer] is not None else x
            H, K = c.n_heads, c.n_kv
            out = []
            for kind, sl, n in (("q", slice(0, H), H), ("k", slice(H, H + K), K), ("v", slice(H + K, H + 2 * K), K)):
                sd = m.site_def(f"blocks.{layer}.attn.hook_{kind}")
                mod = m.hf.get_submodule(sd.module)
                allh = sd.get(mod.forward(ln[:, :, sl].contiguous()), mod)  # [batch pos port n d_head]: every head from every port copy
                out.append(torch.diagonal(allh, dim1=2, dim2=3).transpose(-1, -2))  # port i -> its own head i
            self.ports[layer] = tuple(out)
        return self.ports[layer]

    def interventions(self) -> dict:
        c = self.comp
        iv: dict = {}
        for l in range(c.n_layers):
            for i, kind in enumerate("qkv"):
                iv[f"blocks.{l}.attn.hook_{kind}"] = Replace(
                    lambda act, l=l, i=i: self._attn_ports(l)[i].to(act.dtype), f"edge_{kind}{l}")
            if c.has_mlp:
                iv[f"blocks.{l}.ln2.hook_normalized"] = Replace(lambda act, l=l: self._mlp_port(l, act), f"edge_m{l}")
        iv[f"blocks.{c.n_layers - 1}.hook_resid_post"] = Replace(self._logits_port, "edge_logits")
        if self.input_value is not None:
            iv["blocks.0.hook_resid_pre"] = Replace(lambda act: self.input_value.to(act.dtype).expand_as(act), "edge_input")
        return iv

    def _mlp_port(self, layer: int, act: Tensor) -> Tensor:
        r0, r1 = self.comp.receiver_range(layer, "mlp")
        x = self._port_inputs(self.cache[f"blocks.{layer}.hook_resid_mid"], self.comp.n_senders_before(layer, "mlp"), r0, r1)
        mod = self.ln2[layer]
        sd = self.model.site_def(f"blocks.{layer}.ln2.hook_normalized")
        return sd.get(mod.forward(x[:, :, 0]), mod).to(act.dtype)

    def _logits_port(self, act: Tensor) -> Tensor:
        n = len(self.comp.receivers)
        return self._port_inputs(act, len(self.comp.senders), n - 1, n)[:, :, 0].to(act.dtype)


def run_edges(model, comp: Components, tokens: Tensor, *, mask: Optional[Tensor] = None, ref: Optional[Tensor] = None,
              probes: Optional[Tensor] = None, input_value: Optional[Tensor] = None,
              attention_mask: Optional[Tensor] = None, return_senders: bool = False):
    """Logits of one forward where receiver r's input is ``resid - sum_u M[u,r](s_u - ref_u) + probe_r``.

    ``mask``: ``[senders receivers]`` or ``[pos senders receivers]`` (1 = ablate the edge),
    ``ref``: ``[batch|1 pos senders d_model]`` reference sender outputs (needed with a mask),
    ``probes``: ``[batch pos receivers d_model]`` (gradients = receiver-input gradients),
    ``input_value``: replaces the input node's output (EAP-IG interpolation).
    Returns logits ``[batch pos d_vocab]`` (and, with ``return_senders``, this run's sender
    outputs ``[batch pos senders d_model]``, still attached to the autograd graph).
    """
    if mask is not None and ref is None:
        raise InterpbenchError("run_edges got an ablation mask but no reference sender outputs (ref=)")
    st = _EdgeRun(model, comp, mask, ref, probes, input_value)
    L = comp.n_layers
    names = [f"blocks.{l}.hook_resid_pre" for l in range(L)] + [f"blocks.{l}.attn.hook_z" for l in range(L)]
    if comp.has_mlp:
        names += [f"blocks.{l}.hook_resid_mid" for l in range(L)] + [f"blocks.{l}.hook_mlp_out" for l in range(L)]
    with model.trace(cache=names, interventions=st.interventions(), detach=False) as tr:
        st.cache = tr.cache  # filled as the forward goes; the closures read it
        logits = model(tokens, attention_mask=attention_mask)
    if return_senders:
        return logits, torch.cat([ch for _, ch in st._senders(len(comp.senders))], dim=2)
    return logits


def reference_outputs(model, comp: Components, clean: Tensor, corrupted: Optional[Tensor], ablation: str,
                      clean_senders: Tensor) -> tuple[Tensor, int]:
    """Reference sender outputs for an ablation and the forward passes it cost.

    resample: the corrupted prompts' sender outputs; mean: their mean over prompts, per
    position (``[1 pos senders d_model]``); zero: zeros.
    """
    if ablation == "zero":
        return torch.zeros_like(clean_senders[:1]), 0
    if corrupted is None:
        raise InterpbenchError(f"{ablation} ablation needs corrupted prompts")
    ref = sender_outputs(model, comp, corrupted)
    if ablation == "resample":
        return ref, 1
    if ablation == "mean":
        return ref.mean(0, keepdim=True), 1
    raise InterpbenchError(f"unknown ablation {ablation!r}; use resample, mean or zero")
