"""``interpbench sae train|eval|convert|harvest|archs``: thin wrappers over :mod:`interpbench.sae.pipeline`."""

from __future__ import annotations

from typing import Optional

import typer

_registered: set[int] = set()


def register(app: typer.Typer) -> None:
    """Add the ``sae`` sub-app to ``app`` (once per app)."""
    if id(app) in _registered:
        return
    _registered.add(id(app))
    sae_app = typer.Typer(no_args_is_help=True, help="Train, evaluate and convert sparse autoencoders.")

    @sae_app.command("train")
    def train_cmd(
        out: Optional[str] = typer.Option(None, "--out", help="output folder (default cache/sae/MODEL-SITE-ARCH)"),
        activations: Optional[str] = typer.Option(None, "--activations", help="safetensors file (tensor 'activations' [n, d_in]) or activation-cache folder"),
        model: Optional[str] = typer.Option(None, "--model", help="model spec to harvest from, e.g. smollm2-135m"),
        site: Optional[str] = typer.Option(None, "--site", help="site to read, e.g. blocks.6.hook_resid_post"),
        out_site: Optional[str] = typer.Option(None, "--out-site", help="site to reconstruct (makes a transcoder)"),
        corpus: str = typer.Option("default", "--corpus", help="corpus name or .txt/.jsonl/.parquet path or dataset dir"),
        tokens: str = typer.Option("2M", "--tokens", help="token budget, e.g. 500k, 2M"),
        ctx_len: int = typer.Option(128, "--ctx-len", help="context length for harvesting (BOS included)"),
        harvest_batch: int = typer.Option(8, "--harvest-batch", help="contexts per model forward"),
        cache_activations: bool = typer.Option(False, "--cache-activations", help="harvest into cache/activations first (reused)"),
        stream: bool = typer.Option(False, "--stream", help="harvest during training through a shuffle buffer (big budgets)"),
        arch: str = typer.Option("topk", "--arch", help="relu, topk, batchtopk or jumprelu"),
        k: int = typer.Option(32, "--k", help="active latents per token (topk, batchtopk)"),
        expansion: int = typer.Option(8, "--expansion", help="d_sae = expansion * d_in"),
        d_sae: Optional[int] = typer.Option(None, "--d-sae", help="number of latents (overrides --expansion)"),
        batch_size: int = typer.Option(4096, "--batch-size", help="rows per step (global)"),
        lr: float = typer.Option(0.0, "--lr", help="Adam learning rate (0: 2e-4/sqrt(d_sae/16384))"),
        warmup_steps: int = typer.Option(100, "--warmup-steps"),
        l1_coeff: float = typer.Option(5.0, "--l1-coeff", help="L1 coefficient (relu)"),
        l0_coeff: float = typer.Option(1.0, "--l0-coeff", help="L0 coefficient (jumprelu)"),
        seed: int = typer.Option(0, "--seed"),
        checkpoint_every: int = typer.Option(0, "--checkpoint-every", help="steps between resumable checkpoints"),
        log_file: Optional[str] = typer.Option(None, "--log-file", help="append per-step JSON lines here"),
        device: Optional[str] = typer.Option(None, "--device"),
        dtype: Optional[str] = typer.Option(None, "--dtype", help="model dtype for harvesting (the SAE is fp32)"),
        no_progress: bool = typer.Option(False, "--no-progress"),
    ) -> None:
        """Train an SAE or transcoder; a rerun with the same --out resumes from its checkpoint."""
        from .pipeline import run_train

        path = run_train(out=out, activations=activations, model=model, site=site, out_site=out_site, corpus=corpus,
                         tokens=tokens, ctx_len=ctx_len, harvest_batch=harvest_batch,
                         cache_activations=cache_activations, stream=stream, arch=arch, k=k, expansion=expansion, d_sae=d_sae,
                         batch_size=batch_size, lr=lr, warmup_steps=warmup_steps, l1_coeff=l1_coeff,
                         l0_coeff=l0_coeff, seed=seed, checkpoint_every=checkpoint_every, log_file=log_file,
                         device=device, dtype=dtype, progress=not no_progress)
        import json
        import os

        if int(os.environ.get("RANK", "0")) == 0 and (path / "train.json").exists():
            final = json.loads((path / "train.json").read_text())
            f = final["final"]
            typer.echo(f"saved {path}  tokens={final['tokens']:,}  FVU={f['fvu']:.4f}  L0={f['l0']:.1f}  "
                       f"dead={f['dead']:.1%}  {final['tokens_per_s'] or 0:,.0f} tok/s")

    @sae_app.command("eval")
    def eval_cmd(
        path: str = typer.Argument(..., help="SAE folder (interpbench, SAELens or sparsify layout)"),
        model: Optional[str] = typer.Option(None, "--model", help="model spec (default: the one in cfg.json)"),
        corpus: str = typer.Option("default", "--corpus"),
        tokens: str = typer.Option("20k", "--tokens", help="rows for L0 / FVU / dead fraction"),
        contexts: int = typer.Option(32, "--contexts", help="contexts for loss recovered and KL"),
        ctx_len: int = typer.Option(128, "--ctx-len"),
        top: int = typer.Option(0, "--top", help="also write the top-N activating examples per latent"),
        no_model: bool = typer.Option(False, "--no-model", help="skip loss recovered / KL"),
        device: Optional[str] = typer.Option(None, "--device"),
        dtype: Optional[str] = typer.Option(None, "--dtype"),
    ) -> None:
        """Evaluate an SAE: L0, FVU, dead/dense fractions, loss recovered, KL; writes eval.json."""
        from .pipeline import run_eval

        figs = run_eval(path, model=model, corpus=corpus, tokens=tokens, contexts=contexts, ctx_len=ctx_len, top=top,
                        device=device, dtype=dtype, in_model=not no_model)
        for key, val in figs.items():
            if val is not None and key != "schema_version":
                typer.echo(f"{key:16s} {val:.4f}" if isinstance(val, float) else f"{key:16s} {val}")

    @sae_app.command("convert")
    def convert_cmd(src: str = typer.Argument(..., help="SAE folder (any layout)"),
                    dst: str = typer.Argument(..., help="output folder"),
                    to: str = typer.Option("saelens", "--to", help="interpbench, saelens or sparsify")) -> None:
        """Convert an SAE folder between the interpbench, SAELens and sparsify layouts."""
        from .formats import load, save

        save(load(src), dst, format=to)
        typer.echo(f"wrote {dst} ({to})")

    @sae_app.command("harvest")
    def harvest_cmd(model: str = typer.Option(..., "--model"), site: str = typer.Option(..., "--site"),
                    out_site: Optional[str] = typer.Option(None, "--out-site"),
                    corpus: str = typer.Option("default", "--corpus"), tokens: str = typer.Option("1M", "--tokens"),
                    ctx_len: int = typer.Option(128, "--ctx-len"), batch: int = typer.Option(8, "--harvest-batch"),
                    device: Optional[str] = typer.Option(None, "--device"),
                    dtype: Optional[str] = typer.Option(None, "--dtype")) -> None:
        """Harvest activations into the on-disk cache (cache/activations/...) and print the folder."""
        from .. import load_model
        from .pipeline import parse_count
        from .store import cache_activations

        m = load_model(model, device=device, dtype=dtype)
        typer.echo(str(cache_activations(m, site, corpus, parse_count(tokens), ctx_len=ctx_len, batch_size=batch,
                                         out_site=out_site)))

    @sae_app.command("archs")
    def archs_cmd() -> None:
        """List the SAE architectures."""
        from .arch import ARCHS

        for name, what in ARCHS.items():
            typer.echo(f"{name:10s} {what}")

    app.add_typer(sae_app, name="sae")
