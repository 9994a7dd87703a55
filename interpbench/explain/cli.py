"""``interpbench label ...``: run, resume, inspect and export labelling jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

label_app = typer.Typer(add_completion=False, no_args_is_help=False,
                        help="Explain and score SAE features or neurons (resumable batch jobs).")


@label_app.callback(invoke_without_command=True)
def label(ctx: typer.Context,
          sae: Optional[str] = typer.Option(None, "--sae", help="SAE directory (interpbench.sae format)"),
          neurons: Optional[str] = typer.Option(None, "--neurons", help="MODEL:SITE, e.g. smollm2-135m:blocks.5.mlp.hook_post"),
          synthetic: Optional[str] = typer.Option(None, "--synthetic", help="MODEL: ground-truth synthetic latents"),
          features: str = typer.Option("0:50", "--features", help="START:STOP latent indices"),
          explainer: str = typer.Option("tokens", "--explainer", help="local | tokens | logit-lens | openai:URL[,URL]"),
          scorers: str = typer.Option("detection,embedding", "--scorers",
                                      help="comma list of detection,fuzzing,simulation,embedding,intervention"),
          judge: str = typer.Option("local", "--judge", help="LLM for detection/fuzzing/simulation: local | openai:URL[,URL]"),
          llm_model: str = typer.Option("default", "--llm-model", help="model name sent to OpenAI-compatible endpoints"),
          corpus: str = typer.Option("default", "--corpus", help="corpus name or path"),
          n_docs: int = typer.Option(96, "--n-docs", help="documents to harvest"),
          seed: int = typer.Option(0, "--seed"),
          workers: int = typer.Option(1, "--workers", help="parallel workers (threads; Ray tasks with --ray)"),
          ray: Optional[str] = typer.Option(None, "--ray", help="Ray address, or 'local' for a local instance"),
          resume: bool = typer.Option(False, "--resume", help="continue an existing job"),
          job: Optional[str] = typer.Option(None, "--job", help="job name (default: derived from the config)"),
          threads: int = typer.Option(1, "--threads", help="torch intra-op threads per process (1 is fastest on "
                                                           "a shared CPU; parallelise with --workers)"),
          progress: bool = typer.Option(True, "--progress/--no-progress")) -> None:
    """Run a labelling job (subcommands: status, export)."""
    if ctx.invoked_subcommand is not None:
        return
    import torch

    from .config import LabelConfig, source_spec
    from .job import run_job

    torch.set_num_threads(max(1, threads))
    cfg = LabelConfig(source=source_spec(sae, neurons, synthetic), features=features, explainer=explainer,
                      scorers=tuple(s.strip() for s in scorers.split(",") if s.strip()), judge=judge,
                      llm_model=llm_model, corpus=corpus, n_docs=n_docs, seed=seed)
    s = run_job(cfg, job=job, resume=resume, workers=workers, ray=ray, progress=progress)
    print(f"job {s.job}: " + ", ".join(f"{k} {v}" for k, v in s.counts.items())
          + f"; {s.processed} features in {s.seconds:.1f} s ({s.features_per_minute:.1f} features/min)")
    for name, u in s.llm_usage.items():
        print(f"  {name}: {u['calls']} calls, {u['prompt_tokens']} prompt + {u['completion_tokens']} completion "
              f"tokens, {u['cached']} cached, ${u['cost_usd']:.4f}")
    print(f"  status: interpbench label status {s.job}; export: interpbench label export {s.job} --out FILE.jsonl")


@label_app.command("status")
def status(job: str = typer.Argument(..., help="job name (folder under cache/labels)"),
           show_failed: int = typer.Option(5, "--show-failed", help="list this many failed features")) -> None:
    """Print done / failed / dead / skipped / pending counts and the per-scorer summary."""
    from .export import feature_records, summarize
    from .ledger import open_existing

    ledger = open_existing(job)
    try:
        c = ledger.counts()
        cfg = ledger.config()
        print(f"job {job}: done {c['done']}, failed {c['failed']}, dead {c['dead']}, skipped {c['skipped']}, "
              f"pending {c['pending']}")
        if cfg is not None:
            print(f"  source {cfg.source}, features {cfg.features}, explainer {cfg.explainer}, "
                  f"scorers {','.join(cfg.scorers)}")
        recs = feature_records(ledger)
        for r in [r for r in recs if r["status"] == "failed"][:show_failed]:
            print(f"  failed {r['feature']}: {r['error']}")
        for s, v in summarize(recs).items():
            fmt = lambda x: "n/a" if x is None else f"{x:.3f}"  # noqa: E731
            print(f"  {s}: mean {fmt(v['mean'])} vs random explanation {fmt(v['mean_random_explanation'])}, "
                  f"shuffled latent {fmt(v['mean_shuffled_latent'])}; beats random explanation "
                  f"{fmt(v['beats_random_explanation'])}; parse failures {v['parse_failures']}")
    finally:
        ledger.close()


@label_app.command("export")
def export(job: str = typer.Argument(..., help="job name"),
           out: Path = typer.Option(..., "--out", help="output .jsonl file")) -> None:
    """Write one JSON line per feature (explanation, explainer, per-scorer score and controls)."""
    from .export import export_jsonl
    from .ledger import open_existing

    ledger = open_existing(job)
    try:
        n = export_jsonl(ledger, out)
    finally:
        ledger.close()
    print(f"wrote {n} features to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(label_app, name="label")


__all__ = ["register", "label_app", "json"]
