"""``interpbench circuit``: find a circuit, measure its faithfulness, write a run directory.

1. Load the model and the prompt pairs (``--task`` from the task registry, or ``--pairs``
   JSONL).
2. Run the method (``eap``, ``eap-ig``, ``acdc``, ``exact``) under the ablation; keep ``--top-n``
   edges (ACDC keeps its own); optionally verify the top edges exactly (``--verify K``).
3. Measure MIB faithfulness curves (CPR, CMD) under ``--faith-ablations`` (default: the
   method's ablation), the kept circuit's faithfulness and, with ``--ioi-style``, Wang et
   al.'s faithfulness / completeness / minimality of its nodes.
4. Write ``graph.json`` (with the faithfulness block), ``faithfulness.json``,
   ``faithfulness.html`` and ``result.json`` atomically into ``--out``; print a short
   summary and the run directory as the last line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from ..errors import InterpbenchError


def register(app: typer.Typer) -> None:
    if any((c.name or getattr(c.callback, "__name__", "")) == "circuit" for c in app.registered_commands):
        return  # registered once per process

    @app.command()
    def circuit(
        model: str = typer.Option("smollm2-135m", "--model", help="model spec"),
        task: Optional[str] = typer.Option(None, "--task", help="registered task name (e.g. ioi)"),
        pairs_file: Optional[Path] = typer.Option(None, "--pairs", help="JSONL prompt pairs instead of --task"),
        method: str = typer.Option("eap-ig", "--method", help="eap, eap-ig, eap-ig-edges, acdc or exact (one forward per edge: small models)"),
        ablation: str = typer.Option("resample", "--ablation", help="resample, mean or zero"),
        mediator: str = typer.Option("edge", "--mediator", help="edge (top-n edges) or node (top-n nodes)"),
        n: int = typer.Option(8, "--n", help="number of prompt pairs"),
        seed: int = typer.Option(0, "--seed", help="task seed"),
        steps: int = typer.Option(5, "--steps", help="EAP-IG integration steps"),
        ig_refine: int = typer.Option(0, "--ig-refine",
                                      help="EAP-IG: up to N extra adaptive path points until IG completeness is "
                                           "within 1%% (default 0: the plain steps + 2 passes)"),
        top_n: Optional[int] = typer.Option(None, "--top-n", help="edges kept in the circuit (default: 1%% of edges)"),
        tau: float = typer.Option(0.01, "--tau", help="ACDC threshold"),
        metric: str = typer.Option("logit_diff", "--metric", help="logit_diff, logprob or prob"),
        faith_ablations: Optional[str] = typer.Option(None, "--faith-ablations",
                                                      help="comma list of ablations for the faithfulness curves"),
        no_faithfulness: bool = typer.Option(False, "--no-faithfulness", help="skip the faithfulness curves"),
        verify_k: int = typer.Option(0, "--verify", help="re-score the top K edges exactly"),
        ioi_style: bool = typer.Option(False, "--ioi-style", help="also IOI-style faithfulness/completeness/minimality"),
        export: bool = typer.Option(False, "--export", help="also write GraphML, DOT and circuit-tracer JSON"),
        seed_sweep: int = typer.Option(0, "--seed-sweep",
                                       help="repeat method + faithfulness for K more prompt seeds; report mean/std"),
        out: Optional[Path] = typer.Option(None, "--out", help="run directory (default cache/runs/circuit-...)"),
        device: Optional[str] = typer.Option(None, "--device"),
        dtype: Optional[str] = typer.Option(None, "--dtype"),
    ) -> None:
        """Find a circuit (EAP, EAP-IG, ACDC or exact edge patching) and measure its faithfulness."""
        run_circuit(model=model, task=task, pairs_file=pairs_file, method=method, ablation=ablation, mediator=mediator,
                    n=n, seed=seed,
                    steps=steps, top_n=top_n, tau=tau, metric=metric, faith_ablations=faith_ablations,
                    faithfulness=not no_faithfulness, verify_k=verify_k, ioi=ioi_style, export=export, out=out,
                    device=device, dtype=dtype, seed_sweep=seed_sweep, ig_refine=ig_refine)


def load_pairs(model, task: Optional[str], pairs_file: Optional[Path], n: int, seed: int):
    from .. import tasks

    if (task is None) == (pairs_file is None):
        raise InterpbenchError("give exactly one of --task NAME or --pairs FILE.jsonl")
    if task is not None:
        return tasks.make_task(task, model, n=n, seed=seed)
    pairs = tasks.from_jsonl(pairs_file, model)
    return pairs.subset(list(range(min(n, pairs.n)))) if n < pairs.n else pairs


def run_circuit(*, model: str, task: Optional[str], pairs_file: Optional[Path], method: str, ablation: str,
                mediator: str = "edge", n: int,
                seed: int, steps: int, top_n: Optional[int], tau: float, metric: str, faith_ablations: Optional[str],
                faithfulness: bool, verify_k: int, export: bool, out: Optional[Path], device: Optional[str],
                dtype: Optional[str], ioi: bool = False, seed_sweep: int = 0, ig_refine: int = 0) -> Path:
    from ..models.loading import load_model
    from ..paths import atomic_dir, atomic_write_text, cache_dir
    from . import report
    from .faithfulness import CircuitEvaluator, mib_block
    from .methods import check_method, find_circuit
    from .prune import top_n as prune_top_n

    info = check_method(method, mediator, ablation, ig_refine)  # before loading the model: bad input fails fast
    abls = [a.strip() for a in (faith_ablations or ablation).split(",") if a.strip()]
    for a in abls:
        if a not in ("resample", "mean", "zero"):
            raise InterpbenchError(f"unknown faithfulness ablation {a!r}; use resample, mean or zero")
    t0 = time.perf_counter()
    m = load_model(model, device=device, dtype=dtype)
    pairs = load_pairs(m, task, pairs_file, n, seed)
    timings = {"load": time.perf_counter() - t0}
    t = time.perf_counter()

    def circuit_for(ps):
        """Score all edges on ``ps`` with the method, then keep the circuit (top-n nodes / edges; ACDC prunes itself)."""
        gr = find_circuit(m, ps, method=method, ablation=ablation, steps=steps, tau=tau, metric_name=metric,
                          ig_refine=ig_refine)
        if mediator == "node":
            from .prune import top_nodes

            return top_nodes(gr, top_n if top_n is not None else 10)
        if method == "acdc":
            return gr
        return prune_top_n(gr, top_n if top_n is not None else max(1, len(gr.edges) // 100), absolute=True, prune=True)

    g = circuit_for(pairs)
    timings["method"] = time.perf_counter() - t
    verify_report = None
    if verify_k > 0 and info.approximate:  # exact scores need no verify
        from .verify import verify

        t = time.perf_counter()
        g, verify_report = verify(m, pairs, g, k=verify_k, ablation=ablation)
        timings["verify"] = time.perf_counter() - t
    kept_f = None
    figures: list[str] = []
    block = None
    if faithfulness:
        from .eap import task_metric

        t = time.perf_counter()
        block = mib_block(m, pairs, g, ablations=abls, metric=task_metric(metric))
        ev = CircuitEvaluator(m, pairs, ablation, task_metric(metric))
        mc = float(ev.graph(g).mean())
        res = block["ablations"].get(ablation) or next(iter(block["ablations"].values()))
        c = res["curve_abs"]
        den = c["m_full"] - c["m_empty"]
        kept_f = (mc - c["m_empty"]) / den if den else float("nan")
        block["kept_circuit"] = {"ablation": ablation, "edges": len(g.circuit_edges), "metric": mc, "faithfulness": kept_f}
        block.update(report.app_view(block, ablation if ablation in block["ablations"] else abls[0]))
        if ioi:
            from .faithfulness import ioi_style as _ioi

            block["ioi_style"] = {a: _ioi(m, pairs, g, ablation=a, metric=task_metric(metric)) for a in abls}
        if seed_sweep > 0:
            from .faithfulness import seed_variance

            def make(sd):
                if task is not None:
                    return load_pairs(m, task, None, n, sd)
                import torch

                full = load_pairs(m, None, pairs_file, 10 ** 9, sd)  # a resample of the file's pairs per seed
                gen = torch.Generator().manual_seed(sd)
                return full.subset(torch.randint(0, full.n, (min(n, full.n),), generator=gen).tolist())

            known = None
            if ablation in block["ablations"]:  # this run's seed: reuse its curves instead of recomputing them
                a = block["ablations"][ablation]
                known = {seed: {"graph": g, "signed": a["curve_signed"], "abs": a["curve_abs"],
                                "kept_faithfulness": kept_f}}
            seeds = [seed] + [seed + 1 + i for i in range(seed_sweep)]
            block["seed_variance"] = seed_variance(m, make, circuit_for, seeds, ablation=ablation,
                                                   metric=task_metric(metric), known=known)
            block["seed_variance"]["resampled"] = "task prompts drawn per seed" if task is not None else \
                "pairs resampled with replacement from the file per seed"
        block = report.finite_json(block)
        g = g.with_faithfulness(block)
        timings["faithfulness"] = time.perf_counter() - t
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = cache_dir() / "runs" / f"circuit-{method}-{task or 'pairs'}-{stamp}"
    out = Path(out)
    config = {"model": model, "task": task, "pairs": str(pairs_file) if pairs_file else None, "method": method,
              "mediator": mediator,
              "ablation": ablation, "n": n, "seed": seed, "steps": steps, "ig_refine": ig_refine, "top_n": top_n, "tau": tau, "metric": metric,
              "faith_ablations": abls, "verify": verify_k, "seed_sweep": seed_sweep}
    with atomic_dir(out) as tmp:
        g.save(tmp / "graph.json")
        if block is not None:
            atomic_write_text(tmp / "faithfulness.json", json.dumps(block, indent=1))
            report.faithfulness_figure(block).write_html(str(tmp / "faithfulness.html"), include_plotlyjs=True)
            figures = ["faithfulness.html"]
        if verify_report is not None:
            atomic_write_text(tmp / "verify.json", json.dumps(verify_report, indent=1))
        if export:
            from .export import write_exports

            write_exports(g, tmp)
        rec = report.result_record(out.name, g, config, pairs.describe(), m.cfg.to_dict(), verify_report, timings, figures)
        atomic_write_text(tmp / "result.json", json.dumps(rec, indent=1, default=str))
    for line in report.summary_lines(g, kept_f):
        print(line)
    sv = (block or {}).get("seed_variance")
    if sv:
        print(f"seed variance over {len(sv['seeds'])} prompt seeds ({sv['ablation']}): CPR {sv['cpr']['mean']:.3f} "
              f"± {sv['cpr']['std']:.3f}, CMD {sv['cmd']['mean']:.3f} ± {sv['cmd']['std']:.3f}, kept-circuit "
              f"faithfulness {sv['kept_faithfulness']['mean']:.3f} ± {sv['kept_faithfulness']['std']:.3f}, "
              f"kept-edge Jaccard {sv['kept_edges_jaccard'] if sv['kept_edges_jaccard'] is None else round(sv['kept_edges_jaccard'], 3)}")
    if verify_report is not None:
        print(f"verify (top {verify_report['k']} edges, exact): spearman {verify_report['spearman']:.3f}, "
              f"sign flips {verify_report['sign_flips']}")
    print(str(out))
    return out
