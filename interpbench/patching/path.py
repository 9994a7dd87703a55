"""Path patching (Wang et al. 2022, "Interpretability in the Wild", IOI): the effect of a
sender's output that reaches the model's output *only through chosen receivers*.

A sender is a per-head output (``blocks.l.attn.hook_z[head=h]``, optionally with a
``pos`` index) or an MLP output (``blocks.l.hook_mlp_out``). A receiver is any site that
is an *input* of a later component, or ``"logits"`` (the residual stream read by the
unembedding):

* a head's query/key/value input: ``blocks.l.attn.hook_q[head=h]`` (and ``hook_k`` /
  ``hook_v``). On Llama these are the head's q/k/v computed from ``ln1(resid)``. Under
  grouped-query attention ``hook_k``/``hook_v`` have ``n_kv_heads`` heads, so **a k/v
  receiver port is per KV head**: ``hook_k[head=j]`` is shared by the query heads
  ``j * n_heads/n_kv_heads ...`` and patching it reaches all of them.
* an MLP's input: ``blocks.l.ln2.hook_normalized`` (or ``blocks.l.mlp.hook_pre`` ...).
* ``"logits"``: the final residual stream (the step-2 run's own output).

Algorithm (one call of :func:`path_patch`):

1. Run the clean and the corrupted ("other") prompts once, caching every head's
   ``hook_z`` (and every ``hook_mlp_out`` when MLPs are frozen or are senders).
2. Run the clean prompts with the senders' outputs patched to their corrupted values and
   every *other* attention head's output (``hook_z``) frozen at its clean value (and, when
   ``freeze_mlps=True``, every other MLP output frozen at its clean value), caching the
   receivers' inputs. Freezing makes the sender's effect travel only along direct
   residual paths (plus paths through MLPs, when they are not frozen).
3. Run the clean prompts with only the receivers' inputs patched to the values cached in
   step 2 and return ``metric(logits)``. For ``"logits"`` the step-2 logits are the
   answer (the final residual stream *is* the receiver).

The sweep (:func:`path_patch_sweep`) repeats this for every single-head sender and puts
``S`` senders × ``B`` prompts into one batch: per row, the ``hook_z`` source is the clean
cache with that row's sender head swapped for the corrupted one. Senders whose ``hook_z`` comes
after every receiver in forward order cannot reach them (causality), so they are not run:
their value is the clean metric, exactly what the naive loop computes.

The metric is a callable ``metric(logits [batch pos d_vocab]) -> Tensor[batch]`` (or a
scalar); values reported by the sweep are means over prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import InterpbenchError, SiteError
from ..interventions import Patch
from ..sites import Site
from ..tracing import index_for

SCHEMA_VERSION = 1
LOGITS = "logits"
Metric = Callable[[Tensor], Tensor]
SiteLike = Union[str, Site]


def _check_tokens(clean: Tensor, corrupted: Tensor) -> None:
    if clean.shape != corrupted.shape:
        raise InterpbenchError(f"clean {tuple(clean.shape)} and corrupted {tuple(corrupted.shape)} token shapes "
                               f"differ; path patching needs pairs of the same length")


def _parse_senders(model, senders: Sequence[SiteLike]) -> list[Site]:
    out = []
    for s in ([senders] if isinstance(senders, (str, Site)) else list(senders)):
        site = Site.parse(s)
        model.site_def(site.name)  # unknown names raise with a hint
        if not (site.name.endswith("attn.hook_z") or site.name.endswith("hook_mlp_out")):
            raise SiteError(f"sender {site} must be a head output (blocks.L.attn.hook_z[head=H]) or an MLP "
                            f"output (blocks.L.hook_mlp_out)")
        out.append(site)
    if not out:
        raise InterpbenchError("path patching needs at least one sender")
    return out


def _parse_receivers(model, receivers) -> list[Site]:
    recs = [receivers] if isinstance(receivers, (str, Site)) else list(receivers)
    if not recs:
        raise InterpbenchError("path patching needs at least one receiver (a site or 'logits')")
    out = []
    for r in recs:
        if str(r) == LOGITS:
            out.append(LOGITS)
            continue
        site = Site.parse(r)
        model.site_def(site.name)
        if site.is_pattern:
            raise SiteError(f"receiver {site} is a pattern; list the receivers explicitly")
        out.append(site)
    if LOGITS in out and len(out) > 1:
        raise InterpbenchError("'logits' receives everything; do not combine it with other receivers")
    return out


def _layers(model) -> range:
    return range(model.cfg.n_layers)


def _clean_corrupt_caches(model, clean: Tensor, corrupted: Tensor, want_mlp: bool):
    names = ["blocks.*.attn.hook_z"] + (["blocks.*.hook_mlp_out"] if want_mlp else [])
    clean_logits, c_cache = model.run_with_cache(clean, names)
    _, x_cache = model.run_with_cache(corrupted, names)
    return clean_logits, c_cache, x_cache


def _frozen_sources(model, c_cache: dict, x_cache: dict, senders: list[Site], freeze_mlps: bool) -> dict:
    """Step 2 interventions: per layer one Patch whose source is clean except the senders."""
    ivs: dict[str, Patch] = {}
    kinds = ["attn.hook_z"] + (["hook_mlp_out"] if freeze_mlps or any(s.name.endswith("mlp_out") for s in senders)
                               else [])
    for layer in _layers(model):
        for kind in kinds:
            name = f"blocks.{layer}.{kind}"
            mine = [s for s in senders if s.name == name]
            if kind == "hook_mlp_out" and not freeze_mlps and not mine:
                continue
            src = c_cache[name]
            if mine:
                src = src.clone()
                axes = model.site_def(name).axes
                for s in mine:
                    idx = index_for(s, axes)
                    if idx is None:
                        src = x_cache[name].clone()
                    else:
                        src[idx] = x_cache[name][idx]
            ivs[name] = Patch(src)
    return ivs


def _receiver_cache_names(receivers: list[Site]) -> list[str]:
    """Whole-site names to cache in step 2 (the index is applied when patching in step 3)."""
    return sorted({r.name for r in receivers})


def _receiver_sources(cache: dict, receivers: list[Site]) -> dict:
    """Step 3 interventions: each receiver (with its head/pos index) patched from the step-2 cache."""
    return {str(r): Patch(cache[r.name]) for r in receivers}


@torch.no_grad()
def path_patch(model, clean: Int[Tensor, "batch pos"], corrupted: Int[Tensor, "batch pos"],
               senders: Sequence[SiteLike], receivers: Union[str, Sequence[SiteLike]], metric: Metric, *,
               freeze_mlps: bool = False) -> Tensor:
    """Metric of the clean run in which only the senders→receivers paths carry corrupted values.

    ``senders``: head outputs (``blocks.L.attn.hook_z[head=H]``) and/or MLP outputs
    (``blocks.L.hook_mlp_out``), patched to the corrupted run. ``receivers``: ``"logits"``
    or sites read by later components (``blocks.L.attn.hook_q[head=H]``, ``hook_k``/``hook_v``
    per KV head, ``blocks.L.ln2.hook_normalized``). ``freeze_mlps``: hold every non-sender
    MLP at its clean output in step 2 (Wang et al. freeze heads only; the default).
    Returns ``metric(logits)`` of the final run (per prompt, as the metric returns it).
    """
    clean, corrupted = model.to_tokens(clean), model.to_tokens(corrupted)
    _check_tokens(clean, corrupted)
    snd = _parse_senders(model, senders)
    rec = _parse_receivers(model, receivers)
    want_mlp = freeze_mlps or any(s.name.endswith("mlp_out") for s in snd)
    _, c_cache, x_cache = _clean_corrupt_caches(model, clean, corrupted, want_mlp)
    ivs = _frozen_sources(model, c_cache, x_cache, snd, freeze_mlps)
    if rec == [LOGITS]:
        return metric(model.run_with_interventions(clean, ivs))
    _, r_cache = model.run_with_cache(clean, _receiver_cache_names(rec), interventions=ivs)  # step 2
    return metric(model.run_with_interventions(clean, _receiver_sources(r_cache, rec)))  # step 3


@dataclass(frozen=True)
class PathPatchResult:
    """Path-patching sweep over single-head senders for fixed receivers."""

    values: Float[Tensor, "n_layers n_heads"]
    """Mean metric over prompts of the path-patched run for each sender head."""
    clean_value: float
    """Mean metric of the unpatched clean run."""
    corrupted_value: float
    """Mean metric of the corrupted run."""
    receivers: tuple[str, ...]
    """Receiver sites (or ``('logits',)``)."""
    freeze_mlps: bool
    """Whether non-sender MLPs were frozen at their clean values in step 2."""
    n_prompts: int
    """Number of prompt pairs averaged."""
    per_prompt: Optional[Float[Tensor, "n_layers n_heads batch"]] = None
    """Metric per sender and prompt (for bootstrap CIs); not written by :meth:`to_dict`."""
    meta: dict = field(default_factory=dict)
    """Provenance: method, metric name, data description."""
    schema_version: int = SCHEMA_VERSION
    """On-disk schema version."""

    @property
    def effect(self) -> Tensor:
        """``values - clean_value``: the change each sender's path causes."""
        return self.values - self.clean_value

    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "method": "path_patching", "values": self.values.tolist(),
                "clean_value": self.clean_value, "corrupted_value": self.corrupted_value,
                "receivers": list(self.receivers), "freeze_mlps": self.freeze_mlps, "n_prompts": self.n_prompts,
                "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "PathPatchResult":
        if d.get("schema_version") != SCHEMA_VERSION:
            raise InterpbenchError(f"path patching record has schema_version {d.get('schema_version')}, "
                                   f"this interpbench reads {SCHEMA_VERSION}; rerun the recipe")
        return cls(torch.tensor(d["values"]), d["clean_value"], d["corrupted_value"], tuple(d["receivers"]),
                   d["freeze_mlps"], d["n_prompts"], None, d.get("meta", {}))


def _rows_metric(metric: Metric, logits: Tensor, n_send: int, batch: int) -> Tensor:
    """Metric per (sender, prompt): the metric is called on each sender's [batch ...] block."""
    blocks = logits.unflatten(0, (n_send, batch))  # [S*B pos vocab] -> [S B pos vocab]
    return torch.stack([metric(blocks[s]).float().reshape(-1).expand(batch) for s in range(n_send)])  # [S B]


@torch.no_grad()
def path_patch_sweep(model, clean: Int[Tensor, "batch pos"], corrupted: Int[Tensor, "batch pos"],
                     receivers: Union[str, Sequence[SiteLike]], metric: Metric, *, freeze_mlps: bool = False,
                     max_rows: int = 64, progress: bool = False) -> PathPatchResult:
    """Path patching for every single head as the sender, batched: values ``[n_layers, n_heads]``.

    Equal to calling :func:`path_patch` once per head (``tests/test_path_patching.py``).
    ``max_rows`` bounds the forward batch (senders × prompts per forward).
    """
    clean, corrupted = model.to_tokens(clean), model.to_tokens(corrupted)
    _check_tokens(clean, corrupted)
    rec = _parse_receivers(model, receivers)
    L, H, B = model.cfg.n_layers, model.cfg.n_heads, clean.shape[0]
    clean_logits, c_cache, x_cache = _clean_corrupt_caches(model, clean, corrupted, freeze_mlps)
    clean_m = metric(clean_logits).float().reshape(-1).expand(B)  # [B]
    corrupt_m = metric(model(corrupted)).float().reshape(-1).expand(B)
    per = clean_m.expand(L, H, B).clone()  # senders that cannot reach the receivers keep the clean value
    order = {n: i for i, n in enumerate(model.site_names)}
    last_rec = len(order) if rec == [LOGITS] else max(order[r.name] for r in rec)
    # a head at layer l reaches a receiver only if the receiver comes after its hook_z in forward order
    todo = [(layer, h) for layer in range(L) if order[f"blocks.{layer}.attn.hook_z"] < last_rec for h in range(H)]
    step = max(1, max_rows // B)
    chunks = range(0, len(todo), step)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc="path patching", unit="chunk")
    for start in chunks:
        part = todo[start:start + step]
        S = len(part)
        toks = clean.repeat(S, 1)  # [S*B pos], row s*B+b = prompt b with sender part[s]
        ivs = {}
        for layer in range(L):
            name = f"blocks.{layer}.attn.hook_z"
            src = c_cache[name].repeat(S, 1, 1, 1)  # [S*B pos n_heads d_head]
            for s, (sl, sh) in enumerate(part):
                if sl == layer:
                    src[s * B:(s + 1) * B, :, sh] = x_cache[name][:, :, sh]
            ivs[name] = Patch(src)
            if freeze_mlps:
                ivs[f"blocks.{layer}.hook_mlp_out"] = Patch(c_cache[f"blocks.{layer}.hook_mlp_out"].repeat(S, 1, 1))
        if rec == [LOGITS]:
            logits = model.run_with_interventions(toks, ivs)
        else:
            _, r_cache = model.run_with_cache(toks, _receiver_cache_names(rec), interventions=ivs)
            logits = model.run_with_interventions(toks, _receiver_sources(r_cache, rec))
        vals = _rows_metric(metric, logits, S, B)  # [S B]
        idx = torch.tensor(part, device=per.device)
        per[idx[:, 0], idx[:, 1]] = vals.to(per.device)
    return PathPatchResult(per.mean(-1), float(clean_m.mean()), float(corrupt_m.mean()),
                           tuple(str(r) for r in rec), freeze_mlps, B, per,
                           {"method": "path_patching", "algorithm": "Wang et al. 2022", "senders": "all heads",
                            "n_senders_run": len(todo)})


__all__ = ["path_patch", "path_patch_sweep", "PathPatchResult", "LOGITS"]
