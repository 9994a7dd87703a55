"""Activation store: harvest a site's activations from documents, cache them, serve batches.

1. Contexts: each document is tokenised (no special tokens) and cut into windows of
   ``ctx_len - 1`` tokens; every window gets the model's BOS in front. Windows shorter than
   ``min_len`` tokens are dropped. Documents stay in corpus order (the shuffle comes later).
2. Harvest (:func:`harvest`): contexts are right-padded into batches of ``batch_size`` on
   the model's device and run through the tracing core, caching only the requested site
   (and, for transcoders, the target site). The forward stops right after the last needed
   site (an intervention there raises a private signal that is caught here). BOS and pad
   positions are excluded; the rest are flattened to ``[n d]`` rows in context order.
   Per-head sites (``attn.hook_z``) are flattened to ``[n n_heads*d_head]``.
3. On-disk cache (:func:`cache_activations`): the rows are written as safetensors shards
   (``shard_00000.safetensors`` with tensor ``activations`` [and ``targets``]) into a
   temp dir under ``cache/activations/`` that is renamed into place with a
   ``manifest.json`` (model, site, corpus, token count, ctx_len, d_in, shards) only when
   complete, so a killed harvest leaves no half cache; a second call with the same
   settings reuses it.
4. Batches: :class:`TensorSource` serves shuffled minibatches from an in-memory tensor
   (a new seeded permutation each epoch, state = (epoch, position): exactly resumable);
   :class:`ShuffleBuffer` mixes a stream of harvested chunks from many documents in a
   buffer of ``capacity`` rows before handing out batches; :class:`StreamSource` feeds it
   from the model while training (budgets that do not fit in memory) and resumes exactly
   by replaying the deterministic stream.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import InterpbenchError, ShapeError, SiteError
from ..interventions import Replace
from ..paths import atomic_dir, atomic_write_text, cache_dir
from ..sites import Site

if TYPE_CHECKING:  # pragma: no cover
    from ..models.model import HookedModel

SCHEMA_VERSION = 1


class _StopForward(Exception):
    """Private signal: every needed site has been read; abandon the rest of the forward."""


def contexts(tokenizer, docs: Sequence[str], ctx_len: int = 128, *, bos_id: Optional[int] = None,
             min_len: int = 8) -> list[list[int]]:
    """Token windows ``[BOS, t1, ..., t_{ctx_len-1}]`` over the documents, in order."""
    if ctx_len < 2:
        raise InterpbenchError(f"ctx_len must be at least 2 (BOS + one token), got {ctx_len}")
    bos = tokenizer.bos_token_id if bos_id is None else bos_id
    if bos is None:
        raise InterpbenchError("the tokenizer has no BOS token; pass bos_id=")
    out: list[list[int]] = []
    step = ctx_len - 1
    for ids in tokenizer(list(docs), add_special_tokens=False)["input_ids"]:
        for a in range(0, len(ids), step):
            win = ids[a:a + step]
            if len(win) >= min_len:
                out.append([bos] + win)
    return out


def _flat_site(model: "HookedModel", site: str) -> Site:
    s = Site.parse(site)
    if s.is_pattern:
        raise SiteError(f"SAE sites must be one site, not a pattern: {site!r}")
    sdef = model.site_def(s.name)  # raises with suggestions if unknown
    if len(sdef.axes) < 3 or sdef.axes[1] != "pos" or s.pos is not None:
        raise SiteError(f"site {site!r} has axes {sdef.axes}; SAEs need a per-token site "
                        f"([batch pos ...], no pos index), e.g. blocks.6.hook_resid_post")
    return s


@dataclass
class Harvest:
    """Activations of one site (and optionally a target site) over a batch of contexts."""

    acts: Float[Tensor, "n d_in"]
    """Rows of the input site, BOS/pad excluded, in context order."""
    targets: Optional[Float[Tensor, "n d_out"]]
    """Rows of the target site (transcoders), aligned with ``acts``; None otherwise."""
    tokens: Int[Tensor, "n_ctx ctx_len"]
    """The contexts (right-padded with the pad id) the rows come from."""
    where: Int[Tensor, "n 2"]
    """(context index, position) of each row, for top-activating examples."""


def _run_batch(model: "HookedModel", ids: Tensor, mask: Tensor, sites: list[Site], stop_early: bool) -> list[Tensor]:
    stash: dict[str, Tensor] = {}
    order = {n: i for i, n in enumerate(model.site_names)}
    last = max(sites, key=lambda s: order[s.name])

    def stop(act: Tensor) -> Tensor:
        stash["last"] = act
        raise _StopForward

    cache = [s for s in sites if not (stop_early and s == last)]
    ivs = {str(last): Replace(stop, name="harvest-stop")} if stop_early else None
    try:
        with torch.no_grad(), model.trace(cache=cache or None, interventions=ivs) as tr:
            model(ids, attention_mask=mask)
    except _StopForward:
        pass
    outs = []
    for s in sites:
        act = stash["last"] if (stop_early and s == last) else tr.cache[str(s)]
        outs.append(act.reshape(act.shape[0], act.shape[1], -1))  # [b p ...] -> [b p d]
    return outs


def iter_harvest(model: "HookedModel", site: str, docs: Sequence[str], *, n_tokens: Optional[int] = None,
                 ctx_len: int = 128, batch_size: int = 8, out_site: Optional[str] = None,
                 stop_early: bool = True, progress: bool = False) -> Iterator[Harvest]:
    """Yield one :class:`Harvest` per batch of contexts until ``n_tokens`` rows (or the corpus end)."""
    sites = [_flat_site(model, site)] + ([_flat_site(model, out_site)] if out_site else [])
    ctxs = contexts(model.tokenizer, docs, ctx_len)
    available = sum(len(c) - 1 for c in ctxs)
    if n_tokens is not None and available < n_tokens:
        raise InterpbenchError(f"the corpus holds only {available:,} tokens in {ctx_len}-token contexts but "
                               f"{n_tokens:,} were asked for; lower --tokens or use a larger corpus")
    pad = model.tokenizer.pad_token_id
    pad = pad if pad is not None else (model.tokenizer.eos_token_id or 0)
    total = n_tokens if n_tokens is not None else available
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"harvest {site}", unit="tok")
    done = 0
    for b0 in range(0, len(ctxs), batch_size):
        chunk = ctxs[b0:b0 + batch_size]
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, c in enumerate(chunk):
            ids[i, :len(c)] = torch.tensor(c)
            mask[i, :len(c)] = 1
        keep = mask.bool().clone()
        keep[:, 0] = False  # BOS
        if n_tokens is not None and done + int(keep.sum()) > n_tokens:  # trim the last batch exactly
            flat = keep.flatten().nonzero()[:, 0]
            cut = flat[n_tokens - done:]
            keep.view(-1)[cut] = False
        ids, mask = ids.to(model.device), mask.to(model.device)
        outs = _run_batch(model, ids, mask, sites, stop_early)
        keep_d = keep.to(model.device)
        rows = [o[keep_d] for o in outs]  # [b p d] -> [n d]
        where = keep.nonzero()
        where[:, 0] += b0
        done += rows[0].shape[0]
        if bar is not None:
            bar.update(rows[0].shape[0])
        yield Harvest(rows[0], rows[1] if out_site else None, ids.cpu(), where)
        if n_tokens is not None and done >= n_tokens:
            break
    if bar is not None:
        bar.close()


def harvest(model: "HookedModel", site: str, docs: Sequence[str], *, n_tokens: Optional[int] = None,
            ctx_len: int = 128, batch_size: int = 8, out_site: Optional[str] = None,
            stop_early: bool = True, progress: bool = False) -> Harvest:
    """All activations of ``site`` over ``docs`` (first ``n_tokens`` non-BOS, non-pad tokens).

    >>> h = harvest(model, "blocks.6.hook_resid_post", load_corpus(), n_tokens=10_000)
    >>> h.acts.shape          # [10000, d_model], on model.device, model dtype
    >>> h.tokens[h.where[0, 0], : h.where[0, 1] + 1]   # the context of row 0

    ``out_site`` also returns the aligned rows of a second site (transcoder targets).
    """
    parts = list(iter_harvest(model, site, docs, n_tokens=n_tokens, ctx_len=ctx_len, batch_size=batch_size,
                              out_site=out_site, stop_early=stop_early, progress=progress))
    if not parts:
        raise InterpbenchError("no contexts of at least 8 tokens in the corpus; give longer documents")
    width = max(p.tokens.shape[1] for p in parts)
    pad = model.tokenizer.pad_token_id
    pad = pad if pad is not None else (model.tokenizer.eos_token_id or 0)
    toks = torch.cat([torch.nn.functional.pad(p.tokens, (0, width - p.tokens.shape[1]), value=pad) for p in parts])
    return Harvest(torch.cat([p.acts for p in parts]),
                   torch.cat([p.targets for p in parts]) if out_site else None,
                   toks, torch.cat([p.where for p in parts]))


# -- on-disk cache ----------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    """What a cached activation folder holds (``manifest.json``)."""

    model: str
    """Model spec the activations come from."""
    site: str
    """Input site."""
    out_site: Optional[str]
    """Target site for transcoders, else None."""
    corpus: str
    """Corpus name or path."""
    n_tokens: int
    """Rows in all shards together."""
    ctx_len: int
    """Context length used (BOS included)."""
    d_in: int
    """Width of the input rows."""
    d_out: int
    """Width of the target rows (= d_in without a target site)."""
    dtype: str
    """Stored dtype."""
    shards: tuple
    """(file name, rows) per shard, in order."""
    schema_version: int = SCHEMA_VERSION
    """On-disk format version."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shards"] = [list(s) for s in self.shards]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        if d.get("schema_version") != SCHEMA_VERSION:
            raise InterpbenchError(f"activation cache schema {d.get('schema_version')} is not {SCHEMA_VERSION}; "
                                   f"delete the folder and harvest again")
        return cls(**{**d, "shards": tuple(tuple(s) for s in d["shards"])})


def cache_key(model: str, site: str, corpus: str, n_tokens: int, ctx_len: int, out_site: Optional[str] = None) -> str:
    text = json.dumps([model, site, out_site, corpus, n_tokens, ctx_len, SCHEMA_VERSION])
    safe = f"{Path(model).name}-{site}".replace("/", "_")
    return f"{safe}-{n_tokens}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def cache_activations(model: "HookedModel", site: str, corpus: str, n_tokens: int, *, ctx_len: int = 128,
                      batch_size: int = 8, out_site: Optional[str] = None, shard_tokens: int = 262_144,
                      root: Optional[Path] = None, progress: bool = True) -> Path:
    """Harvest into ``cache/activations/<key>/`` (reused when present); returns the folder."""
    from safetensors.torch import save_file

    from ..corpus import load_corpus

    root = Path(root) if root is not None else cache_dir() / "activations"
    final = root / cache_key(model.cfg.name, site, corpus, n_tokens, ctx_len, out_site)
    if (final / "manifest.json").exists():
        return final
    docs = load_corpus(corpus)
    shards: list[tuple[str, int]] = []
    with atomic_dir(final) as tmp:
        buf_a: list[Tensor] = []
        buf_t: list[Tensor] = []
        d_in = d_out = 0

        def flush() -> None:
            if not buf_a:
                return
            name = f"shard_{len(shards):05d}.safetensors"
            tensors = {"activations": torch.cat(buf_a).cpu().contiguous()}
            if buf_t:
                tensors["targets"] = torch.cat(buf_t).cpu().contiguous()
            save_file(tensors, str(tmp / name))
            shards.append((name, tensors["activations"].shape[0]))
            buf_a.clear()
            buf_t.clear()

        n_buf = 0
        for h in iter_harvest(model, site, docs, n_tokens=n_tokens, ctx_len=ctx_len, batch_size=batch_size,
                              out_site=out_site, progress=progress):
            d_in = h.acts.shape[1]
            d_out = h.targets.shape[1] if h.targets is not None else d_in
            buf_a.append(h.acts)
            if h.targets is not None:
                buf_t.append(h.targets)
            n_buf += h.acts.shape[0]
            if n_buf >= shard_tokens:
                flush()
                n_buf = 0
        flush()
        man = Manifest(model.cfg.name, site, out_site, corpus, sum(n for _, n in shards), ctx_len, d_in, d_out,
                       str(model.dtype).replace("torch.", ""), tuple(shards))
        atomic_write_text(tmp / "manifest.json", json.dumps(man.to_dict(), indent=2))
    return final


def load_activations(path: Path) -> tuple[Tensor, Optional[Tensor], Optional[Manifest]]:
    """``(activations [n d_in], targets [n d_out] | None, manifest | None)`` from a cache folder or one file."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise InterpbenchError(f"activation file {path} does not exist")
    files, man = [path], None
    if path.is_dir():
        if not (path / "manifest.json").exists():
            raise InterpbenchError(f"{path} has no manifest.json; it is not a complete activation cache")
        man = Manifest.from_dict(json.loads((path / "manifest.json").read_text()))
        files = [path / name for name, _ in man.shards]
    acts, tgts = [], []
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            keys = set(fh.keys())
            if "activations" not in keys:
                raise ShapeError(f"{f} has no tensor 'activations' (it has {sorted(keys)}); save your [n, d_in] "
                                 f"rows under that key")
            a = fh.get_tensor("activations")
            if a.ndim != 2:
                raise ShapeError(f"{f}: 'activations' must be [n, d_in], got shape {tuple(a.shape)}")
            acts.append(a)
            if "targets" in keys:
                tgts.append(fh.get_tensor("targets"))
    return torch.cat(acts), (torch.cat(tgts) if tgts else None), man


# the batch sources live in sources.py (kept importable from here)
from .sources import ShuffleBuffer, StreamSource, TensorSource  # noqa: E402

__all__ = ["contexts", "harvest", "iter_harvest", "Harvest", "cache_activations", "load_activations", "Manifest",
           "cache_key", "TensorSource", "ShuffleBuffer", "StreamSource"]
