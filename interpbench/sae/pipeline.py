"""The SAE jobs behind the CLI and recipes: ``run_train(**options)`` and ``run_eval(dir, **options)``.

Keyword names mirror the CLI options (``--expansion`` -> ``expansion``) and the keys of
``recipes/sae_*.yaml``.

run_train:
1. Data: ``activations`` (a safetensors file with ``activations`` [n d_in] and optional
   ``targets``, or an activation-cache folder) or ``model`` + ``site`` (+ ``out_site`` for
   a transcoder) harvested from ``corpus`` up to ``tokens`` rows; with ``cache_activations``
   (or under several processes) the harvest goes through the on-disk cache first; with
   ``stream`` it runs during training through a shuffle buffer (no full tensor in memory).
2. Build the configs, train (resuming from ``out/checkpoint`` when present), save to ``out``.
3. Under ``torchrun`` (``WORLD_SIZE`` > 1) a process group is started (NCCL on CUDA, else
   gloo); rank 0 harvests and writes, the others wait at a barrier and read the cache.
run_eval:
1. Load the SAE; take ``tokens`` rows of its site from the corpus read from its end (so
   they are not the first documents a training harvest used); compute the figures and,
   with a model, the loss recovered; write ``eval.json`` (and ``top_examples.json``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional, Union

from ..errors import ConfigError, InterpbenchError
from ..paths import atomic_write_text, cache_dir


def parse_count(value: Union[int, str]) -> int:
    """``2M`` -> 2_000_000, ``500k`` -> 500_000, ``4096`` -> 4096."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kKmMgG]?)\s*", str(value))
    if not m:
        raise ConfigError(f"cannot read the count {value!r}: use e.g. 500k, 2M or 100000")
    mult = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def _dist_setup() -> tuple[int, int]:
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def run_train(*, out: Optional[str] = None, activations: Optional[str] = None, model: Optional[str] = None,
              site: Optional[str] = None, out_site: Optional[str] = None, corpus: str = "default",
              tokens: Union[int, str] = "2M", ctx_len: int = 128, harvest_batch: int = 8,
              cache_activations: bool = False, stream: bool = False, arch: str = "topk", k: Optional[int] = 32, expansion: int = 8,
              d_sae: Optional[int] = None, batch_size: int = 4096, lr: float = 0.0, warmup_steps: int = 100,
              l1_coeff: float = 5.0, l0_coeff: float = 1.0, seed: int = 0, checkpoint_every: int = 0,
              log_file: Optional[str] = None, device: Optional[str] = None, dtype: Optional[str] = None,
              progress: bool = True) -> Path:
    """Train an SAE (see the module docstring); returns the output folder."""
    import torch

    from ..models.devices import resolve_device
    from .config import SAEConfig, TrainConfig
    from .store import TensorSource, cache_activations as cache_fn, harvest, load_activations
    from .train import Trainer

    n_tokens = parse_count(tokens)
    rank, world = _dist_setup()
    dev = resolve_device(device)
    if world > 1 and dev.type != "cpu":  # one accelerator per process
        dev = torch.device(dev.type, int(os.environ.get("LOCAL_RANK", "0")))
    if activations is None and (model is None or site is None):
        raise ConfigError("give --activations FILE, or --model and --site to harvest from a corpus")
    if activations is not None:
        acts, targets, man = load_activations(Path(activations))
        provenance = {"model": man.model if man else None, "site": man.site if man else None,
                      "out_site": man.out_site if man else None}
    else:
        from .. import load_model

        m = load_model(model, device=dev, dtype=dtype)
        if stream and not cache_activations:
            from ..corpus import load_corpus
            from .store import StreamSource

            acts = targets = None
            streaming = StreamSource(m, site, load_corpus(corpus), n_tokens=n_tokens, batch_size=batch_size,
                                     out_site=out_site, ctx_len=ctx_len, harvest_batch=harvest_batch, seed=seed,
                                     rank=rank, world=world)
            x0, y0 = streaming.sample(8)
        elif cache_activations or world > 1:
            folder = None
            if rank == 0:
                folder = cache_fn(m, site, corpus, n_tokens, ctx_len=ctx_len, batch_size=harvest_batch,
                                  out_site=out_site, progress=progress)
            if world > 1:
                import torch.distributed as dist

                box = [str(folder) if folder else None]
                dist.broadcast_object_list(box, 0)
                folder = Path(box[0])
            acts, targets, _ = load_activations(folder)
        else:
            from ..corpus import load_corpus

            h = harvest(m, site, load_corpus(corpus), n_tokens=n_tokens, ctx_len=ctx_len, batch_size=harvest_batch,
                        out_site=out_site, progress=progress)
            acts, targets = h.acts, h.targets
        provenance = {"model": model, "site": site, "out_site": out_site}
    n_tokens = min(n_tokens, acts.shape[0]) if activations is not None else n_tokens
    if acts is None:  # streaming
        d_in, d_out = x0.shape[1], (y0.shape[1] if out_site else None)
    else:
        d_in = acts.shape[1]
        d_out = targets.shape[1] if targets is not None else None
    if arch in ("relu", "jumprelu"):
        k = None
    sae_cfg = SAEConfig(arch=arch, d_in=d_in, d_sae=d_sae or expansion * d_in, d_out=d_out, k=k,
                        l1_coeff=l1_coeff, l0_coeff=l0_coeff, normalize_decoder=arch != "relu",
                        model=provenance["model"], site=provenance["site"],
                        out_site=provenance["out_site"] or ("unknown" if d_out is not None else None))
    train_cfg = TrainConfig(batch_size=batch_size, n_tokens=n_tokens, lr=lr, warmup_steps=warmup_steps, seed=seed,
                            checkpoint_every=checkpoint_every)
    if out is None:
        name = f"{Path(provenance['model'] or 'acts').name}-{(provenance['site'] or 'site').replace('/', '_')}-{arch}"
        out = str(cache_dir() / "sae" / name)
    src = streaming if acts is None else TensorSource(acts, targets, batch_size=batch_size, seed=seed, rank=rank,
                                                      world=world)
    trainer = Trainer(sae_cfg, train_cfg, src, out=Path(out), device=dev,
                      log_file=Path(log_file) if log_file else None, progress=progress)
    try:
        trainer.run()
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
    return Path(out)


def run_eval(path: str, *, model: Optional[str] = None, corpus: str = "default", tokens: Union[int, str] = "20k",
             contexts: int = 32, ctx_len: int = 128, top: int = 0, device: Optional[str] = None,
             dtype: Optional[str] = None, in_model: bool = True, progress: bool = True) -> dict:
    """Evaluate the SAE in ``path``; writes ``eval.json`` there and returns the figures."""
    from .. import load_model
    from ..corpus import load_corpus
    from ..models.devices import resolve_device
    from .evaluate import evaluate, top_examples
    from .formats import load
    from .store import harvest

    sae = load(path, device=resolve_device(device))
    spec = model or sae.cfg.model
    if not spec or not sae.cfg.site:
        raise InterpbenchError(f"{path} does not say which model and site it was trained on; pass --model "
                               f"(and make sure cfg.json has a site)")
    m = load_model(spec, device=sae.device, dtype=dtype)
    docs = load_corpus(corpus)[::-1]
    out_site = sae.cfg.out_site if sae.cfg.is_transcoder else None
    h = harvest(m, sae.cfg.site, docs, n_tokens=parse_count(tokens), ctx_len=ctx_len, out_site=out_site,
                progress=progress)
    res = evaluate(sae, h.acts, h.targets, model=m if in_model else None, docs=docs, n_contexts=contexts,
                   ctx_len=ctx_len, corpus=corpus)
    figs = res.to_dict()
    atomic_write_text(Path(path) / "eval.json", json.dumps(figs, indent=2))
    if top:
        vals, rows = top_examples(sae, h.acts, n=top)
        ex = []
        for lat in range(vals.shape[0]):
            items = []
            for v, r in zip(vals[lat].tolist(), rows[lat].tolist()):
                if r < 0 or v <= 0:
                    continue
                c, p = h.where[r].tolist()
                ctx = h.tokens[c, max(0, p - 12):p + 1].tolist()
                items.append({"act": v, "context": m.tokenizer.decode(ctx[:-1]), "token": m.tokenizer.decode(ctx[-1:])})
            ex.append({"latent": lat, "examples": items})
        atomic_write_text(Path(path) / "top_examples.json", json.dumps(ex))
    return figs


__all__ = ["run_train", "run_eval", "parse_count"]
