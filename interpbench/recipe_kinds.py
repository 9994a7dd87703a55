"""Built-in recipe kinds: each is a config dataclass plus a ``run(config) -> RunOutput``.

The functions here only wire configs to the library (tasks, patching, tracing, graphs, SAE,
labelling) and shape the results for ``result.json``; the algorithms live in their modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .recipes import RunOutput, register_recipe_kind


def _model(cfg):
    from .models.loading import load_model

    return load_model(cfg.model, device=cfg.device, dtype=cfg.dtype)


def _pairs(cfg, model):
    from . import tasks

    if cfg.pairs:
        return tasks.from_jsonl(cfg.pairs, model)
    return tasks.make_task(cfg.task, model, n=cfg.n, seed=cfg.seed)


def _score_block(res, n_boot: int, seed: int) -> dict:
    """values + CI over prompts for a PatchResult (CIs only where per-prompt values exist)."""
    from .metrics import mean_ci_tensor

    block = {"values": res.values.detach().float().cpu().tolist(), "axes": list(res.axes), "labels": res.labels,
             "ci_low": None, "ci_high": None}
    if res.per_prompt is not None:
        _, lo, hi = mean_ci_tensor(res.per_prompt, n_boot=n_boot, seed=seed)
        block["ci_low"], block["ci_high"] = lo.float().cpu().tolist(), hi.float().cpu().tolist()
    return block


@dataclass(frozen=True)
class PatchingConfig:
    """Activation (or attribution) patching sweep over one component kind."""

    model: str = "smollm2-135m"
    """Model spec (bundled name, local dir, hub id)."""
    task: str = "ioi"
    """Task name from interpbench.tasks (ioi, greater_than, induction, facts, gender)."""
    pairs: Optional[str] = None
    """JSONL file of {clean, corrupted, answer, wrong} pairs; overrides ``task``."""
    n: int = 8
    """Number of prompt pairs."""
    seed: int = 0
    """Seed for the task generator and the bootstrap."""
    site: str = "resid_pre"
    """Component kind: resid_pre|resid_mid|resid_post|attn_out|mlp_out|head_out|head_out_pos|q|k|v|neuron ..."""
    metric: str = "logit_diff"
    """Metric name: logit_diff, prob, logprob, loss, kl."""
    direction: str = "denoise"
    """denoise: clean activations into the corrupted run (TransformerLens convention); noise: reverse."""
    aggregate: str = "mean_of_differences"
    """How per-prompt values pool for the normalised score: mean_of_differences or difference_of_means."""
    layers: Optional[list[int]] = None
    """Layers to sweep (default: all)."""
    method: str = "fast"
    """fast (batched, prefix reuse) or naive (one forward per patch)."""
    n_boot: int = 1000
    """Bootstrap resamples for the confidence intervals."""
    device: Optional[str] = None
    """cpu, cuda, auto (default)."""
    dtype: Optional[str] = None
    """float32 (default), bfloat16, float16."""


def _patching_output(cfg, model, pairs, res, kind_name: str, extra: Optional[dict] = None) -> RunOutput:
    from .figures import heatmap

    scores = {"values": _score_block(res, cfg.n_boot, cfg.seed)}
    norm = res.normalized()
    scores["normalized"] = {**scores["values"], "values": norm.detach().float().cpu().tolist(), "ci_low": None, "ci_high": None}
    spec = res.metric.to_dict()
    title = (f"{kind_name}: {cfg.site} on {pairs.name} (n={pairs.n}) — {spec['name']}, {spec['direction']}, "
             f"{spec['aggregate']} — {model.cfg.name}")
    figures = {}
    if len(res.axes) == 2:
        figures["heatmap"] = heatmap(scores["values"]["values"], res.axes, res.labels, title,
                                     scores["values"]["ci_low"], scores["values"]["ci_high"], colorbar=spec["name"], zmid=None)
        figures["normalized"] = heatmap(scores["normalized"]["values"], res.axes, res.labels,
                                        "normalised " + title, colorbar="normalised")
    flat = norm.flatten()
    top = flat.abs().topk(min(5, flat.numel())).indices.tolist()
    shape = list(norm.shape)

    def unravel(i):
        out = []
        for s in reversed(shape):
            out.append(i % s)
            i //= s
        return list(reversed(out))
    lines = [f"{kind_name} {cfg.site} on {pairs.name} n={pairs.n}: clean {res.clean.float().mean():.3f}, "
             f"corrupted {res.corrupted.float().mean():.3f} ({spec['name']})",
             "top cells (normalised): " + ", ".join(
                 f"{dict(zip(res.axes, unravel(i)))}={flat[i].item():+.3f}" for i in top)]
    result = {"kind": kind_name, "method": res.method, "metric": {"name": spec["name"], "convention": spec},
              "ablation": "resample (patch from the other prompt of each pair)", "model": model.cfg.to_dict(),
              "task": pairs.describe(), "scores": scores, "n_forwards": res.n_forwards,
              "clean_metric": res.clean.float().mean().item(), "corrupted_metric": res.corrupted.float().mean().item(),
              "timings": {k: v for k, v in res.meta.items() if k.endswith("_s")}, **(extra or {})}
    return RunOutput(result, tensors={"values": res.values, "normalized": norm}, figures=figures,
                     summary="\n".join(lines))


@register_recipe_kind("activation_patching", PatchingConfig)
def run_activation_patching(cfg: PatchingConfig) -> RunOutput:
    """Exact activation patching of one component kind over a task."""
    from .patching import activation_patch

    model = _model(cfg)
    pairs = _pairs(cfg, model)
    res = activation_patch(model, pairs.clean, pairs.corrupted, site=cfg.site, metric=cfg.metric,
                           direction=cfg.direction, answer=pairs.answer, wrong=pairs.wrong, layers=cfg.layers,
                           method=cfg.method, aggregate=cfg.aggregate, progress=True)
    return _patching_output(cfg, model, pairs, res, "activation_patching")


@register_recipe_kind("attribution_patching", PatchingConfig)
def run_attribution_patching(cfg: PatchingConfig) -> RunOutput:
    """Attribution patching (first order) with its correlation to exact patching alongside."""
    from .patching import attribution_vs_exact

    model = _model(cfg)
    pairs = _pairs(cfg, model)
    comp = attribution_vs_exact(model, pairs.clean, pairs.corrupted, site=cfg.site, metric=cfg.metric,
                                direction=cfg.direction, answer=pairs.answer, wrong=pairs.wrong, layers=cfg.layers,
                                method=cfg.method)
    out = _patching_output(cfg, model, pairs, comp.attribution, "attribution_patching",
                           {"vs_exact": {"pearson": comp.pearson, "spearman": comp.spearman}})
    from .figures import heatmap

    if len(comp.exact.axes) == 2:
        out.figures["exact"] = heatmap(comp.exact.values.float().cpu().tolist(), comp.exact.axes, comp.exact.labels,
                                       f"exact patching {cfg.site} (for comparison)", zmid=None)
    out.tensors["exact_values"] = comp.exact.values
    return RunOutput(out.result, out.tensors, out.figures, out.files,
                     out.summary + f"\nattribution vs exact: pearson {comp.pearson:.3f}, spearman {comp.spearman:.3f}")


@dataclass(frozen=True)
class CircuitConfig:
    """Circuit discovery (EAP, EAP-IG, ACDC) with faithfulness curves; see `interpbench circuit`."""

    model: str = "smollm2-135m"
    """Model spec."""
    task: Optional[str] = "ioi"
    """Task name (or use ``pairs``)."""
    pairs: Optional[str] = None
    """JSONL prompt pairs instead of ``task``."""
    method: str = "eap-ig"
    """eap, eap-ig, eap-ig-edges or acdc."""
    ablation: str = "resample"
    """resample, mean or zero."""
    mediator: str = "edge"
    """edge (top-n edges) or node (top-n nodes)."""
    n: int = 8
    """Prompt pairs."""
    seed: int = 0
    """Task seed."""
    steps: int = 5
    """EAP-IG integration steps."""
    top_n: Optional[int] = None
    """Edges kept in the circuit (default: 1 % of edges)."""
    tau: float = 0.01
    """ACDC threshold."""
    metric: str = "logit_diff"
    """logit_diff, logprob or prob."""
    faith_ablations: Optional[str] = None
    """Comma list of ablations for the faithfulness curves (default: ``ablation``)."""
    faithfulness: bool = True
    """Compute MIB faithfulness curves (CPR, CMD)."""
    verify: int = 0
    """Re-score the top K edges exactly and report agreement."""
    export: bool = False
    """Also write GraphML, DOT and circuit-tracer JSON."""
    seed_sweep: int = 0
    """Repeat method + faithfulness for this many more prompt seeds (mean/std of CPR, CMD)."""
    ig_refine: int = 0
    """EAP-IG: up to this many extra adaptive path points until IG completeness is within 1 %."""
    device: Optional[str] = None
    """cpu, cuda, auto."""
    dtype: Optional[str] = None
    """float32 (default), bfloat16."""


@register_recipe_kind("circuit", CircuitConfig)
def run_circuit_recipe(cfg: CircuitConfig) -> RunOutput:
    """Circuit discovery: graph.json + faithfulness into the run dir (same code as `interpbench circuit`)."""
    import contextlib
    import io
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from .graphs.cli import run_circuit

    tmp = Path(tempfile.mkdtemp(prefix="interpbench-circuit-"))
    try:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            out = run_circuit(model=cfg.model, task=None if cfg.pairs else cfg.task,
                              pairs_file=Path(cfg.pairs) if cfg.pairs else None, method=cfg.method,
                              ablation=cfg.ablation, mediator=cfg.mediator, n=cfg.n, seed=cfg.seed, steps=cfg.steps,
                              top_n=cfg.top_n, tau=cfg.tau, metric=cfg.metric, faith_ablations=cfg.faith_ablations,
                              faithfulness=cfg.faithfulness, verify_k=cfg.verify, export=cfg.export,
                              out=tmp / "run", device=cfg.device, dtype=cfg.dtype, seed_sweep=cfg.seed_sweep,
                              ig_refine=cfg.ig_refine)
        rec = json.loads((out / "result.json").read_text())
        files = {p.name: p.read_text() for p in out.iterdir() if p.is_file() and p.name != "result.json"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for key in ("schema_version", "run_id", "recipe", "created", "config"):
        rec.pop(key, None)
    summary = "\n".join(line for line in buf.getvalue().splitlines() if not line.startswith(str(tmp)))
    return RunOutput(rec, files=files, summary=summary)


@dataclass(frozen=True)
class SaeTrainConfig:
    """Train an SAE / transcoder (interpbench.sae.pipeline.run_train), then evaluate it."""

    model: Optional[str] = "smollm2-135m"
    """Model to harvest from."""
    site: Optional[str] = "blocks.15.hook_resid_post"
    """Site to read."""
    out_site: Optional[str] = None
    """Set to train a transcoder (reconstruct this site instead)."""
    corpus: str = "default"
    """default (human-written Wikipedia + news sample), a .txt/.jsonl path, or an HF dataset dir."""
    tokens: Union[int, str] = "200k"
    """Token budget, e.g. 200k, 2M."""
    ctx_len: int = 128
    """Context length when harvesting."""
    harvest_batch: int = 8
    """Contexts per forward while harvesting."""
    cache_activations: bool = True
    """Keep the harvest under cache/activations/ for reuse."""
    stream: bool = False
    """Harvest during training through a shuffle buffer."""
    activations: Optional[str] = None
    """Train on a safetensors file with tensor 'activations' [n, d_in] instead."""
    arch: str = "topk"
    """relu | topk | batchtopk | jumprelu."""
    k: Optional[int] = 32
    """Active latents per token (topk / batchtopk)."""
    expansion: int = 8
    """d_sae = expansion * d_in."""
    d_sae: Optional[int] = None
    """Explicit width."""
    batch_size: int = 1024
    """Rows per step."""
    lr: float = 0.0
    """0 = 2e-4 / sqrt(d_sae / 16384)."""
    warmup_steps: int = 20
    """Linear warm-up steps."""
    l1_coeff: float = 5.0
    """relu only."""
    l0_coeff: float = 1.0
    """jumprelu only."""
    seed: int = 0
    """Seed."""
    checkpoint_every: int = 50
    """Checkpoint period (steps); rerun to resume."""
    log_file: Optional[str] = None
    """Per-step JSON lines."""
    out: Optional[str] = "cache/sae/smollm2-135m-blocks.15-topk"
    """Output folder (cfg.json + weights)."""
    eval_tokens: Union[int, str] = "20k"
    """Rows for the evaluation after training (0 skips it)."""
    eval_contexts: int = 16
    """Contexts for loss recovered / KL."""
    device: Optional[str] = None
    """cpu, cuda, auto."""
    dtype: Optional[str] = None
    """Model dtype while harvesting (the SAE is fp32)."""


@register_recipe_kind("sae_train", SaeTrainConfig)
def run_sae_train(cfg: SaeTrainConfig) -> RunOutput:
    """Train an SAE and record its evaluation (L0, FVU, dead fraction, loss recovered)."""
    import dataclasses

    from .sae.pipeline import run_eval, run_train

    kw = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("eval_tokens", "eval_contexts")}
    path = run_train(**kw)
    figs = run_eval(str(path), tokens=cfg.eval_tokens, contexts=cfg.eval_contexts) if str(cfg.eval_tokens) != "0" else {}
    return RunOutput({"kind": "sae_train", "method": f"sae:{cfg.arch}", "model": {"name": cfg.model},
                      "task": {"task": f"corpus:{cfg.corpus}", "tokens": str(cfg.tokens)},
                      "metric": {"name": "fvu", "convention": {"eval_tokens": str(cfg.eval_tokens)}},
                      "ablation": "sae splice (error term dropped for loss recovered)", "sae_path": str(path),
                      "scores": {}, "eval": figs},
                     summary=f"SAE at {path}: " + ", ".join(f"{k}={v:.4g}" for k, v in figs.items()
                                                          if isinstance(v, (int, float))))


@dataclass(frozen=True)
class SaeEvalConfig:
    """Evaluate a trained SAE (interpbench.sae.pipeline.run_eval)."""

    path: str = "cache/sae/smollm2-135m-blocks.15-topk"
    """SAE folder (interpbench, SAELens or sparsify layout)."""
    model: Optional[str] = None
    """Model (default: the one in the SAE's cfg.json)."""
    corpus: str = "default"
    """Corpus, read from its end."""
    tokens: Union[int, str] = "20k"
    """Rows for L0 / FVU / dead fraction."""
    contexts: int = 32
    """Contexts for loss recovered and KL."""
    ctx_len: int = 128
    """Context length."""
    top: int = 10
    """Top-activating examples per latent (0 = skip)."""
    in_model: bool = True
    """False skips the loss-recovered forwards."""
    device: Optional[str] = None
    """cpu, cuda, auto."""
    dtype: Optional[str] = None
    """Model dtype."""


@register_recipe_kind("sae_eval", SaeEvalConfig)
def run_sae_eval(cfg: SaeEvalConfig) -> RunOutput:
    """Evaluate an SAE in the model."""
    import dataclasses

    from .sae.pipeline import run_eval

    kw = dataclasses.asdict(cfg)
    figs = run_eval(kw.pop("path"), **kw)
    return RunOutput({"kind": "sae_eval", "method": "sae_eval", "model": {"name": cfg.model},
                      "task": {"task": f"corpus:{cfg.corpus}"}, "metric": {"name": "fvu", "convention": {}},
                      "ablation": "none", "sae_path": cfg.path, "scores": {}, "eval": figs},
                     summary=", ".join(f"{k}={v:.4g}" for k, v in figs.items() if isinstance(v, (int, float))))


def _label_recipe_cls():
    """A frozen dataclass of LabelConfig's fields plus the job-run options (job, resume, workers, ray)."""
    import dataclasses
    import typing

    from .explain.config import LabelConfig

    hints = typing.get_type_hints(LabelConfig)
    specs = []
    for f in dataclasses.fields(LabelConfig):
        default = (dataclasses.field(default=f.default) if f.default is not dataclasses.MISSING
                   else dataclasses.field(default_factory=f.default_factory))
        specs.append((f.name, hints[f.name], default))
    specs += [("job", Optional[str], dataclasses.field(default=None)),
              ("resume", bool, dataclasses.field(default=True)),
              ("workers", int, dataclasses.field(default=1)),
              ("ray", Optional[str], dataclasses.field(default=None))]
    cls = dataclasses.make_dataclass("LabelRecipe", specs, frozen=True)
    cls.__doc__ = "Labelling job: LabelConfig fields plus job, resume, workers, ray."
    return cls


@register_recipe_kind("label", _label_recipe_cls())
def run_label(cfg) -> RunOutput:
    """Batch feature labelling through the resumable job ledger; exports features.jsonl for the app."""
    import dataclasses
    import json

    from .explain.export import feature_records, summarize
    from .explain.ledger import open_existing
    from .explain.recipe import run_recipe

    d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    summary = run_recipe(d)
    records = feature_records(open_existing(summary.job))
    stats = summarize(records)
    return RunOutput({"kind": "sae_labels", "method": f"explainer:{cfg.explainer}", "model": {"name": str(cfg.source)},
                      "task": {"task": "feature labelling", "features": str(cfg.features)},
                      "metric": {"name": ",".join(cfg.scorers), "convention": {"controls": "random explanation, shuffled latent"}},
                      "ablation": "n/a", "job": summary.job, "counts": summary.counts, "scores": {}, "summary": stats},
                     files={"features.jsonl": "".join(json.dumps(r) + "\n" for r in records)},
                     summary=f"job {summary.job}: {summary.counts}")


@dataclass(frozen=True)
class CausalTracingConfig:
    """ROME causal tracing over the curated fact set (facts the model gets right)."""

    model: str = "smollm2-135m"
    """Model spec."""
    n_facts: int = 8
    """Facts traced (the first n the model answers correctly, see ``only_correct``)."""
    only_correct: bool = True
    """Trace only facts the model gets right (ROME's setting); false traces the first n usable facts."""
    kinds: list[str] = ("resid", "mlp", "attn")
    """Restored states: resid (single hidden states), mlp / attn (windows of outputs)."""
    severs: list[str] = ()
    """Severed variants of resid traces: mlp and/or attn frozen at corrupted values."""
    samples: int = 10
    """Noise draws per prompt (batched)."""
    noise_scale: float = 3.0
    """Noise std as a multiple of the embedding std (ROME: 3)."""
    noise_reference: str = "embedding_matrix"
    """embedding_matrix or subjects."""
    window: int = 10
    """Layers restored together for mlp/attn traces."""
    positions: str = "categories"
    """all (every position) or categories (subject tokens, first after, last: cheaper)."""
    seed: int = 0
    """Noise seed."""
    device: Optional[str] = None
    """cpu, cuda, auto."""
    dtype: Optional[str] = None
    """Model dtype."""


@register_recipe_kind("causal_tracing", CausalTracingConfig)
def run_causal_tracing(cfg: CausalTracingConfig) -> RunOutput:
    """Causal tracing: AIE per layer and token category, per-fact heatmaps."""
    from .causal_tracing import TracingConfig, causal_trace
    from .figures import heatmap
    from .tasks.facts import check_facts, load_facts

    model = _model(cfg)
    facts, dropped = load_facts(model)
    checked = check_facts(model, facts)
    correct = [f for f in checked if f.correct or not cfg.only_correct][: cfg.n_facts]
    tcfg = TracingConfig(samples=cfg.samples, noise_scale=cfg.noise_scale, noise_reference=cfg.noise_reference,
                         window=cfg.window, seed=cfg.seed)
    res = causal_trace(model, correct, kinds=list(cfg.kinds), severs=list(cfg.severs), cfg=tcfg,
                       positions=cfg.positions, progress=True)
    d = res.to_dict()
    cats = d["categories"]
    n_right = sum(bool(f.correct) for f in checked)
    figures, scores, lines = {}, {}, [f"causal tracing on {len(correct)} facts ({len(facts)} usable, {n_right} answered "
                                      f"correctly, {len(dropped)} dropped), TE {res.te:.3f}, noise std {res.noise_std:.3f}"]
    for label, aie in res.aie.items():
        vals = aie.float().cpu()
        scores[f"aie_{label}"] = {"values": vals.tolist(), "axes": ["layer", "category"],
                                  "labels": {"layer": list(range(vals.shape[0])), "category": cats},
                                  "ci_low": None, "ci_high": None}
        figures[f"aie_{label}"] = heatmap(vals.tolist(), ["layer", "category"],
                                          {"layer": list(range(vals.shape[0])), "category": cats},
                                          f"average indirect effect, {label} restored — p(answer), n={len(correct)} facts, "
                                          f"{model.cfg.name}", colorbar="AIE", zmid=None)
        flat = vals.nan_to_num(-1).flatten()
        i = int(flat.argmax())
        lines.append(f"  {label}: peak AIE {flat[i]:.3f} at layer {i // vals.shape[1]}, {cats[i % vals.shape[1]]}")
    result = {"kind": "causal_tracing", "method": "causal_tracing (Meng et al. 2022)", "model": model.cfg.to_dict(),
              "task": {"task": "facts", "n": len(correct), "usable": len(facts), "correct": n_right, "dropped": len(dropped)},
              "metric": {"name": "prob", "convention": {"effect": "p_restored - p_corrupted", **tcfg.to_dict(),
                                                         "noise_std": res.noise_std}},
              "ablation": f"gaussian noise on subject embeddings (std {res.noise_std:.4f})", "te": res.te,
              "scores": scores}
    import json

    return RunOutput(result, figures=figures, files={"causal_trace.json": json.dumps(d)}, summary="\n".join(lines))


@dataclass(frozen=True)
class MediationConfig:
    """Causal mediation (Vig et al. 2020) on the gender-bias templates."""

    model: str = "smollm2-135m"
    """Model spec."""
    task: str = "gender"
    """Task whose clean prompts are the null prompts and corrupted prompts the set-gender prompts."""
    n: int = 8
    """Prompts."""
    seed: int = 0
    """Task seed."""
    mediators: str = "layers"
    """layers (every attn_out and mlp_out) or heads (every head's output)."""
    contrast: str = "ratio"
    """ratio (Vig: a/b - 1) or difference."""
    n_boot: int = 1000
    """Bootstrap resamples."""
    device: Optional[str] = None
    """cpu, cuda, auto."""
    dtype: Optional[str] = None
    """Model dtype."""


@register_recipe_kind("mediation", MediationConfig)
def run_mediation(cfg: MediationConfig) -> RunOutput:
    """Total, natural direct and natural indirect effects per mediator, with bootstrap CIs."""
    from .mediation import head_mediators, layer_mediators, mediation

    model = _model(cfg)
    from . import tasks

    pairs = tasks.make_task(cfg.task, model, n=cfg.n, seed=cfg.seed)
    if cfg.mediators == "heads":
        meds = head_mediators(model)
    elif cfg.mediators == "layers":
        meds = layer_mediators(model, "hook_attn_out") + layer_mediators(model, "hook_mlp_out")
    else:
        from .errors import ConfigError

        raise ConfigError(f"mediators must be 'layers' or 'heads', got {cfg.mediators!r}")
    res = mediation(model, pairs.clean, pairs.corrupted, meds, answer=pairs.answer, wrong=pairs.wrong,
                    contrast=cfg.contrast, n_boot=cfg.n_boot, seed=cfg.seed)
    d = res.to_dict()
    names = list(res.mediators)
    scores = {k: {"values": [[e["mean"] for e in d[k]]], "axes": ["row", "mediator"],
                  "labels": {"row": [k], "mediator": names},
                  "ci_low": [[e.get("ci_low") for e in d[k]]], "ci_high": [[e.get("ci_high") for e in d[k]]]}
              for k in ("nie", "nde")}
    import plotly.graph_objects as go

    fig = go.Figure([go.Bar(name=k.upper(), x=names, y=scores[k]["values"][0]) for k in ("nie", "nde")])
    fig.update_layout(title=f"causal mediation on {pairs.name} (n={pairs.n}), TE {d['te']['mean']:.3f} "
                            f"[{d['te'].get('ci_low', float('nan')):.3f}, {d['te'].get('ci_high', float('nan')):.3f}] "
                            f"— {res.response}, {res.contrast} contrast — {model.cfg.name}", barmode="group",
                      template="plotly_white")
    top = sorted(range(len(names)), key=lambda i: -abs(d["nie"][i]["mean"]))[:5]
    summary = (f"mediation on {pairs.name} n={pairs.n}: TE {d['te']['mean']:.3f}; top NIE: "
               + ", ".join(f"{names[i]}={d['nie'][i]['mean']:.3f}" for i in top))
    import json

    return RunOutput({"kind": "mediation", "method": "causal mediation (Vig et al. 2020)", "model": model.cfg.to_dict(),
                      "task": pairs.describe(), "metric": {"name": res.response, "convention": {"contrast": res.contrast}},
                      "ablation": "set mediator to its value under the other prompt", "te": d["te"], "scores": scores},
                     figures={"effects": fig}, files={"mediation.json": json.dumps(d)}, summary=summary)


@dataclass(frozen=True)
class PathPatchingConfig:
    """Path patching (Wang et al. 2022): every head as sender, fixed receivers."""

    model: str = "smollm2-135m"
    """Model spec."""
    task: str = "ioi"
    """Task name."""
    n: int = 8
    """Prompt pairs."""
    seed: int = 0
    """Task seed."""
    receivers: list[str] = ("logits",)
    """Receivers: 'logits' or sites such as blocks.20.attn.hook_q[head=3] (k/v: KV-head index under GQA)."""
    freeze_mlps: bool = False
    """Freeze non-sender MLPs at clean values too."""
    device: Optional[str] = None
    """cpu, cuda, auto."""
    dtype: Optional[str] = None
    """Model dtype."""


@register_recipe_kind("path_patching", PathPatchingConfig)
def run_path_patching(cfg: PathPatchingConfig) -> RunOutput:
    """Sender-head sweep of path patching into the given receivers (logit difference)."""
    from . import tasks
    from .figures import heatmap
    from .metrics import logit_diff
    from .patching.path import path_patch_sweep

    model = _model(cfg)
    pairs = tasks.make_task(cfg.task, model, n=cfg.n, seed=cfg.seed)
    receivers = "logits" if list(cfg.receivers) == ["logits"] else list(cfg.receivers)
    res = path_patch_sweep(model, pairs.clean, pairs.corrupted, receivers,
                           lambda lg: logit_diff(lg, pairs.answer, pairs.wrong), freeze_mlps=cfg.freeze_mlps,
                           progress=True)
    denom = res.clean_value - res.corrupted_value
    norm = ((res.values - res.clean_value) / denom).float().cpu() if denom else res.effect.float().cpu()
    labels = {"layer": list(range(model.cfg.n_layers)), "head": list(range(model.cfg.n_heads))}
    scores = {"values": {"values": res.values.float().cpu().tolist(), "axes": ["layer", "head"], "labels": labels,
                         "ci_low": None, "ci_high": None},
              "normalized": {"values": norm.tolist(), "axes": ["layer", "head"], "labels": labels,
                             "ci_low": None, "ci_high": None}}
    title = (f"path patching senders -> {', '.join(res.receivers)} on {pairs.name} (n={pairs.n}); "
             f"(patched - clean)/(clean - corrupted) of logit_diff — {model.cfg.name}")
    flat = norm.flatten()
    top = flat.abs().topk(min(5, flat.numel())).indices.tolist()
    H = model.cfg.n_heads
    summary = (f"path patching -> {list(res.receivers)}: clean {res.clean_value:.3f}, corrupted "
               f"{res.corrupted_value:.3f}; strongest senders: "
               + ", ".join(f"a{i // H}.h{i % H}={flat[i]:+.3f}" for i in top))
    return RunOutput({"kind": "path_patching", "method": "path patching (Wang et al. 2022)",
                      "model": model.cfg.to_dict(), "task": pairs.describe(),
                      "metric": {"name": "logit_diff", "convention": {"direction": "noise (sender from corrupted into clean)",
                                                                      "normalized": "(patched - clean)/(clean - corrupted)"}},
                      "ablation": "resample (corrupted sender outputs)", "scores": scores,
                      "clean_metric": res.clean_value, "corrupted_metric": res.corrupted_value},
                     tensors={"values": res.values}, figures={"heatmap": heatmap(norm.tolist(), ["layer", "head"], labels, title)},
                     summary=summary)


def _register_dissection() -> None:
    from .dissect.run_text import TextDissectConfig, run_text
    from .dissect.vision.demo import VisionDemoConfig, run_vision

    register_recipe_kind("dissect_text", TextDissectConfig)(run_text)
    register_recipe_kind("dissect_vision", VisionDemoConfig)(run_vision)


_register_dissection()
