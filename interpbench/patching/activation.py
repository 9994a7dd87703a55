"""Exact activation patching over a grid of components, with a fast batched path.

Noising / denoising (Meng et al. 2022; Wang et al. 2022; Heimersheim & Nanda 2024):
``direction="denoise"`` runs the corrupted prompt and patches in the clean activation
(as ``transformer_lens.patching`` does); ``"noise"`` runs the clean prompt and patches in
the corrupted activation. ``values`` holds the metric of every patched run.

Naive path (``method="naive"``): one full forward per grid element with a
:class:`~interpbench.interventions.Patch` at ``site[index]`` through the tracing core.

Fast path (``method="fast"``, decoder-only HF models):

1. Run the *base* prompt (corrupted when denoising) once with the KV cache on, caching
   ``resid_pre`` of every swept layer, the swept sites and the logits; run the *source*
   prompt once caching the swept sites.
2. For each layer ``l``, split its grid elements into chunks (sorted by position); a chunk
   is capped by ``max_tokens`` (rows × suffix length); the cut points minimise a cost model,
   ``forward_cost`` token-equivalents per forward plus one per token run (positions a chunk
   recomputes without need, see step 4, count as tokens run). A chunk's patched runs are stacked
   along the batch axis (row ``j*n + i`` = element ``j``, prompt ``i``).
3. Layers before ``l`` are not recomputed: the model's block list is temporarily cut to
   ``blocks[l:]`` and block ``l``'s input is replaced by the cached base ``resid_pre``.
4. Positions before the chunk's first patched position ``p0`` are not recomputed: a patch
   at position ``p >= p0`` cannot change them in a causal model, so the base run's cached
   keys/values for positions ``< p0`` are fed as ``past_key_values`` and only the suffix
   ``p0:`` goes through the blocks (per-head-all-position and neuron kinds use ``p0 = 0``).
5. The patch itself is a ``torch.where`` of a per-row element mask between the source
   activation and the run's activation at the site (one intervention for the whole chunk).
6. Elements whose source activation equals the base activation bit for bit (e.g. positions
   before the first token where clean and corrupted differ, or at layer 0 any position with
   the same token) would run a forward identical to the base run: they are not run, and
   get the base run's metric. One host sync for the whole sweep decides which.
7. Named metrics at the last position ask the model for the last position's logits only;
   callables get full ``[n, pos, vocab]`` logits, with positions ``< p0`` copied from the
   base run (exact, by causality). No host syncs inside the loops.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..errors import InterpbenchError, ShapeError
from ..interventions import Patch, Replace
from ..metrics import MetricSpec, per_prompt
from ..models.sitemap import get_module
from .kinds import Kind, element_mask, get_kind, grid_shape, site_index
from .result import PatchResult

MetricLike = Union[str, Callable[[Tensor], Tensor]]


class _Metric:
    """A named metric bound to answer ids (per-prompt values) or a user callable (scalar per run)."""

    def __init__(self, metric: MetricLike, answer, wrong, pos: int, n: int, device):
        self.fn = metric if callable(metric) else None
        self.name = metric if isinstance(metric, str) else None
        if self.fn is None and self.name is None:
            raise InterpbenchError("metric must be a metric name (e.g. 'logit_diff') or a callable logits -> scalar")
        self.pos = pos
        self.n = n
        self.answer = None if answer is None else torch.as_tensor(answer, device=device).long().expand(n)
        self.wrong = None if wrong is None else torch.as_tensor(wrong, device=device).long().expand(n)
        self.clean_logits: Optional[Tensor] = None
        if self.name is not None:
            per_prompt(self.name, torch.zeros(n, 2, device=device), torch.zeros(n, dtype=torch.long, device=device),
                       torch.ones(n, dtype=torch.long, device=device) if self.wrong is not None else None,
                       torch.zeros(n, 2, device=device))  # validates name and needed ids up front
            if self.answer is None and self.name != "kl":
                raise InterpbenchError(f"metric {self.name!r} needs answer ids (answer=...)")

    @property
    def last_only(self) -> bool:
        return self.name is not None and self.pos == -1

    def description(self) -> str:
        if self.name:
            return self.name
        return "custom:" + getattr(self.fn, "__name__", type(self.fn).__name__)

    def __call__(self, logits: Tensor, k: int) -> Tensor:
        """Metric of ``k`` stacked runs ``[k*n, pos, vocab]`` -> ``[k, n]`` (named) or ``[k]`` (callable)."""
        if self.name is not None:
            rep = lambda t: None if t is None else t.repeat(k)  # noqa: E731
            cl = None if self.clean_logits is None else self.clean_logits[:, self.pos].repeat(k, 1)
            x = logits[:, self.pos]
            return per_prompt(self.name, x, rep(self.answer), rep(self.wrong), cl).view(k, self.n)
        n = self.n
        return torch.stack([torch.as_tensor(self.fn(logits[j * n:(j + 1) * n])) for j in range(k)])


def _blocks(model) -> tuple[nn.Module, str, nn.ModuleList]:
    path = model.site_def("blocks.0.hook_resid_pre").module  # e.g. model.layers.0
    container = path.rsplit(".", 1)[0]  # model.layers
    parent_path, _, attr = container.rpartition(".")
    parent = get_module(model.hf, parent_path) if parent_path else model.hf
    return parent, attr, getattr(parent, attr)


@contextlib.contextmanager
def start_at_layer(model, layer: int):
    """Temporarily cut the model's block list to ``blocks[layer:]`` (restored in ``finally``)."""
    parent, attr, blocks = _blocks(model)
    try:
        setattr(parent, attr, nn.ModuleList(list(blocks)[layer:]))
        yield
    finally:
        setattr(parent, attr, blocks)


def _kv_arg(model) -> Optional[str]:
    params = inspect.signature(model.hf.forward).parameters
    return "cache" if "cache" in params else ("past_key_values" if "past_key_values" in params else None)


def _kv_layers(out) -> list[tuple[Tensor, Tensor]]:
    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
    if cache is None:
        raise InterpbenchError("the model returned no KV cache; use method='naive'")
    return [(lay.keys, lay.values) for lay in cache.layers]


def _chunks(elems: list[tuple], positional: bool, T: int, n: int, max_tokens: int,
            forward_cost: float) -> list[list[tuple]]:
    """Group elements so one batched forward runs each group (see the module docstring, step 2).

    Cost model: a forward of ``t`` tokens (rows × suffix length) costs ``forward_cost + t``
    token-equivalents per block. Positional kinds are sorted by position and cut into
    contiguous groups by an exact dynamic programme over position boundaries minimising the
    total cost, subject to ``t <= max_tokens`` (a group whose elements start at ``p0``
    recomputes ``T - p0`` positions for every row). Other kinds always run all positions:
    groups are filled up to ``max_tokens``.
    """
    if not elems:
        return []
    if not positional:
        per = max(1, max_tokens // max(1, n * T))
        return [elems[i:i + per] for i in range(0, len(elems), per)]
    elems = sorted(elems, key=lambda e: e[0])
    starts = [i for i in range(len(elems)) if i == 0 or elems[i][0] != elems[i - 1][0]] + [len(elems)]
    B = len(starts) - 1  # position blocks; cuts only between them
    inf = float("inf")
    best = [0.0] + [inf] * B
    back = [0] * (B + 1)
    for j in range(1, B + 1):  # best[j]: cost of elements before block j
        for i in range(j - 1, -1, -1):
            rows = (starts[j] - starts[i]) * n
            tokens = rows * (T - elems[starts[i]][0])
            if tokens > max_tokens and i < j - 1:
                break  # widening further only adds rows
            c = best[i] + forward_cost + tokens
            if c < best[j]:
                best[j], back[j] = c, i
    out: list[list[tuple]] = []
    j = B
    while j > 0:
        i = back[j]
        group = elems[starts[i]:starts[j]]
        if len(group) * n * (T - group[0][0]) > max_tokens and len(group) > 1:  # one position block too wide
            per = max(1, max_tokens // max(1, n * (T - group[0][0])))
            out.extend(reversed([group[a:a + per] for a in range(0, len(group), per)]))
        else:
            out.append(group)
        j = i
    return out[::-1]


def _grid_elems(kind: Kind, T: int, site_shape: tuple[int, ...]) -> list[tuple]:
    if kind.grid == "pos":
        return [(p,) for p in range(T)]
    if kind.grid == "head":
        return [(h,) for h in range(site_shape[1])]
    if kind.grid == "pos_head":
        return [(p, h) for p in range(T) for h in range(site_shape[1])]
    return [(i,) for i in range(site_shape[-1])]


def _flat_index(kind: Kind, elem: tuple, shape: tuple[int, ...]) -> int:
    if kind.grid == "pos_head":
        return elem[0] * shape[1] + elem[1]
    return elem[0]


@torch.no_grad()
def activation_patch(model, clean_tokens: Tensor, corrupted_tokens: Tensor, *, site: str = "resid_pre",
                     metric: MetricLike, direction: str = "denoise", answer=None, wrong=None, pos: int = -1,
                     layers: Optional[Sequence[int]] = None, method: str = "fast", max_tokens: int = 4096, forward_cost: Optional[float] = None,
                     aggregate: str = "mean_of_differences", progress: bool = False) -> PatchResult:
    """Exact activation patching of every element of a component grid (see the module docstring).

    ``site``: a kind from :data:`interpbench.patching.kinds.KINDS` (``resid_pre``, ``attn_out``,
    ``head_out``, ``k_pos``, ``neuron``, ...). ``metric``: a name (``logit_diff``, ``prob``,
    ``logprob``, ``loss``, ``kl``) used with ``answer``/``wrong`` ids, or a callable
    ``logits [n pos vocab] -> scalar``. ``layers``: the layers to sweep (default all).
    ``max_tokens`` caps rows × positions per batched forward; ``forward_cost`` is what one
    more forward costs in tokens run (default: 48 on CPU, measured on ``smollm2-135m`` with
    2 threads, where a forward is bound by reading the weights; 2048 elsewhere, where one
    wide forward costs about as much as a narrow one). Both only change speed, never values.
    """
    t0 = time.perf_counter()
    kind = get_kind(site)
    clean = model.to_tokens(clean_tokens)
    corrupted = model.to_tokens(corrupted_tokens)
    if clean.shape != corrupted.shape:
        raise ShapeError(f"clean {tuple(clean.shape)} and corrupted {tuple(corrupted.shape)} tokens differ in shape; "
                         f"patching needs pairs of equal token length")
    if direction not in ("denoise", "noise"):
        raise InterpbenchError(f"direction must be 'denoise' or 'noise', got {direction!r}")
    if method not in ("fast", "naive"):
        raise InterpbenchError(f"method must be 'fast' or 'naive', got {method!r}")
    n, T = clean.shape
    if forward_cost is None:
        forward_cost = 48.0 if model.device.type == "cpu" else 2048.0
    layers = list(range(model.cfg.n_layers)) if layers is None else [int(x) for x in layers]
    bad = [x for x in layers if not 0 <= x < model.cfg.n_layers]
    if bad:
        raise InterpbenchError(f"layers {bad} out of range 0..{model.cfg.n_layers - 1}")
    base_tok, src_tok = (corrupted, clean) if direction == "denoise" else (clean, corrupted)
    m = _Metric(metric, answer, wrong, pos, n, model.device)
    fast = method == "fast" and model.cfg.causal and model._forward is None and _kv_arg(model) is not None
    sites = [kind.site(x) for x in layers]
    resid = [f"blocks.{x}.hook_resid_pre" for x in layers] if fast else []
    with torch.no_grad():
        with model.trace(cache=list(dict.fromkeys(sites + resid))) as tr_b:
            out_b = model.hf(input_ids=base_tok, use_cache=True) if fast else None
            base_logits = out_b.logits if fast else model(base_tok)
        with model.trace(cache=sites) as tr_s:
            src_logits = model(src_tok)
    clean_logits, corr_logits = (src_logits, base_logits) if direction == "denoise" else (base_logits, src_logits)
    m.clean_logits = clean_logits
    clean_val, corr_val = m(clean_logits, 1)[0], m(corr_logits, 1)[0]
    site_shape = tuple(tr_s.cache[sites[0]].shape[1:])  # [pos, ...] of one prompt
    shape = grid_shape(kind, len(layers), T, site_shape)
    elems = _grid_elems(kind, T, site_shape)
    numel = 1
    for s in shape[1:]:
        numel *= s
    per = torch.zeros(len(layers), numel, n, device=model.device) if m.name else None
    vals = torch.zeros(len(layers), numel, device=model.device)
    n_fwd = 2
    kv = _kv_layers(out_b) if fast else None
    base_val = m(base_logits, 1)[0]
    if fast:  # which patches would change anything (one host sync for the whole sweep)
        changed = torch.stack([_changed(kind, tr_s.cache[s], tr_b.cache[s]) for s in sites]).tolist()
    n_skipped = 0
    it = range(len(layers))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"patching {kind.name}", unit="layer")
    for li in it:
        layer, sname = layers[li], sites[li]
        src_act = tr_s.cache[sname]
        if not fast:
            for e in elems:
                iv = {sname + site_index(kind, e): Patch(src_act)}
                logits = model.run_with_interventions(base_tok, iv)
                r = m(logits, 1)
                j = _flat_index(kind, e, shape[1:])
                if per is not None:
                    per[li, j] = r[0]
                    vals[li, j] = r[0].mean()
                else:
                    vals[li, j] = r[0]
                n_fwd += 1
            continue
        base_resid = tr_b.cache[f"blocks.{layer}.hook_resid_pre"]
        flat = [_flat_index(kind, e, shape[1:]) for e in elems]
        same = [j for j in flat if not changed[li][j]]
        if same:
            idx = torch.tensor(same, device=model.device)
            if per is not None:
                per[li, idx] = base_val
                vals[li, idx] = base_val.mean()
            else:
                vals[li, idx] = base_val.to(vals.dtype)
            n_skipped += len(same)
        todo = [e for e, j in zip(elems, flat) if changed[li][j]]
        for chunk in _chunks(todo, kind.positional, T, n, max_tokens, forward_cost):
            k = len(chunk)
            p0 = chunk[0][0] if kind.positional else 0
            r = _fast_chunk(model, kind, layer, sname, chunk, p0, k, base_tok, base_resid, src_act, kv,
                            base_logits, m)
            idx = torch.tensor([_flat_index(kind, e, shape[1:]) for e in chunk], device=model.device)
            if per is not None:
                per[li, idx] = r
                vals[li, idx] = r.mean(-1)
            else:
                vals[li, idx] = r.to(vals.dtype)
            n_fwd += 1
    vals = vals.view(shape)
    per = per.view(*shape, n) if per is not None else None
    spec = MetricSpec(m.description(), direction, aggregate, pos)
    labels = {"layer": layers, "pos": list(range(T)),
              "tokens": [model.tokenizer.decode([t]) for t in clean[0].tolist()]}
    if kind.grid in ("head", "pos_head"):
        labels["head"] = list(range(site_shape[1]))
    if kind.grid == "neuron":
        labels["neuron"] = list(range(site_shape[-1]))
    return PatchResult(vals, clean_val, corr_val, kind.name, kind.hook, kind.axes(), labels, spec,
                       "fast" if fast else "naive", per, n_fwd,
                       {"seconds": time.perf_counter() - t0, "n_prompts": n, "seq_len": T, "max_tokens": max_tokens, "forward_cost": forward_cost,
                        "skipped_noop_patches": n_skipped})


def _changed(kind: Kind, src: Tensor, base: Tensor) -> Tensor:
    """``[numel]`` bool in grid order: does patching this element change the site at all?"""
    diff = src != base  # [n T ...]
    if kind.grid == "pos":
        return diff.flatten(2).any(2).any(0)
    if kind.grid == "pos_head":
        return diff.any(-1).any(0).flatten()
    if kind.grid == "head":
        return diff.any(-1).any(1).any(0)
    return diff.flatten(0, -2).any(0)


def _fast_chunk(model, kind: Kind, layer: int, sname: str, chunk: list[tuple], p0: int, k: int, base_tok: Tensor,
                base_resid: Tensor, src_act: Tensor, kv: list, base_logits: Tensor, m: _Metric) -> Tensor:
    """Metric of ``k`` patched runs at one layer, starting at block ``layer`` and position ``p0``."""
    n, T = base_tok.shape
    S = T - p0
    dev = base_tok.device
    elems = torch.tensor(chunk, dtype=torch.long, device=dev)  # [k e]
    src = src_act[:, p0:]  # [n S ...]
    mask = element_mask(kind, elems, p0, tuple(src.shape[1:]))  # [k 1 S ...]
    resid_in = base_resid[:, p0:].repeat(k, 1, 1)  # [k*n S d_model]

    def patch(act: Tensor) -> Tensor:
        a = act.view(k, n, *act.shape[1:])  # [k*n S ...] -> [k n S ...]
        return torch.where(mask, src[None], a).reshape(act.shape)

    resid_site = f"blocks.{layer}.hook_resid_pre"
    if sname == resid_site:
        ivs = {resid_site: Replace(lambda act: patch(resid_in), "patch")}
    else:
        ivs = {resid_site: Replace(lambda act: resid_in, "start"), sname: Replace(patch, "patch")}
    kwargs: dict = {"input_ids": base_tok[:, p0:].repeat(k, 1)}
    if p0 > 0:
        from transformers import DynamicCache

        rows = k * n
        data = [(K[:1, :, :p0].expand(rows, -1, -1, -1), V[:1, :, :p0].expand(rows, -1, -1, -1)) if i < layer
                else (K[:, :, :p0].repeat(k, 1, 1, 1), V[:, :, :p0].repeat(k, 1, 1, 1)) for i, (K, V) in enumerate(kv)]
        kwargs[_kv_arg(model)] = DynamicCache(data)
        kwargs["use_cache"] = True
    else:
        kwargs["use_cache"] = False
    if m.last_only:
        kwargs["logits_to_keep"] = 1
    with torch.no_grad(), model.trace(interventions=ivs), start_at_layer(model, layer):
        logits = model.hf(**kwargs).logits
    if not m.last_only and p0 > 0:
        logits = torch.cat([base_logits[:, :p0].repeat(k, 1, 1), logits], dim=1)  # full [k*n T vocab]
    return m(logits, k)
