"""Causal tracing (Meng et al. 2022, "Locating and Editing Factual Associations in GPT", ROME).

For one fact (prompt, subject token positions, answer token):

1. Clean run: cache the states that may be restored (``hook_resid_post`` of every layer for
   ``kind="resid"``, ``hook_mlp_out`` / ``hook_attn_out`` for ``"mlp"`` / ``"attn"``) and
   ``p_clean = softmax(logits[-1])[answer]``.
2. Corrupted run: add Gaussian noise ``N(0, noise_std^2)`` to the token embeddings
   (``hook_embed``) at the subject positions, with ``noise_std = noise_scale × std``
   (``noise_scale=3``), where ``std`` is measured over the model's whole embedding matrix
   (``noise_reference="embedding_matrix"``, the default) or over the embeddings of the
   subject tokens of the fact set (``"subjects"``, as ROME does). ``samples`` noise draws
   (one seeded generator per fact) run as one batch; ``p_corrupted`` is the mean answer
   probability over the draws.
3. Restoration: for every layer ``l`` and position ``p``, rerun the corrupted batch (same
   noise) with the clean state restored at ``(l, p)`` — a single hidden state for
   ``"resid"``, or the MLP / attention outputs of the layers
   ``max(0, l - window//2) … min(L, l - (-window//2)) - 1`` at position ``p`` for
   ``"mlp"`` / ``"attn"`` (ROME's window, default 10). ``scores[l, p]`` is the mean
   answer probability over the noise draws. Many restorations × draws share one forward
   (``max_rows`` bounds the batch); each row carries its own restore mask. Fast path
   (default): blocks before the first restored layer are not recomputed — restorations are
   grouped by that layer and their runs start there from the corrupted run's cached
   ``resid_pre`` (:func:`interpbench.patching.activation.start_at_layer`); equal to the
   naive full reruns (``fast=False``) by test.
4. Severed variant (``sever="mlp"`` or ``"attn"``, only with ``kind="resid"``): while the
   hidden state is restored, every MLP (or attention) output at every layer and position
   is frozen at its value in the corrupted run of step 2, so the restored state cannot act
   through those modules.
5. Over a fact set: indirect effect ``IE[l, p] = scores[l, p] - p_corrupted``; total
   effect ``TE = p_clean - p_corrupted``. The average indirect effect (AIE) averages the
   per-fact IE over facts within ROME's token categories: first / middle / last subject
   token, first subsequent token, further tokens, last token (categories may overlap for
   short prompts, as in ROME; a fact with no token in a category does not count there).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from .errors import ConfigError, InterpbenchError
from .interventions import Add, Patch, Replace

SCHEMA_VERSION = 1
KINDS = ("resid", "mlp", "attn")
CATEGORIES = ("first_subject", "middle_subject", "last_subject", "first_subsequent", "further", "last")
_SITE = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}


@dataclass(frozen=True)
class TracingConfig:
    """Settings of a causal trace (written into every record)."""

    samples: int = 10
    """Noise draws per prompt (batched in one forward)."""
    noise_scale: float = 3.0
    """Noise std as a multiple of the reference embedding std (ROME: 3)."""
    noise_std: Optional[float] = None
    """Absolute noise std; overrides ``noise_scale × reference std`` when given."""
    noise_reference: str = "embedding_matrix"
    """Where the embedding std is measured: ``embedding_matrix`` or ``subjects`` (the fact set's subject tokens)."""
    window: int = 10
    """Layers restored together for ``mlp`` / ``attn`` traces (ROME: 10)."""
    seed: int = 0
    """Seed of the noise; fact ``i`` uses ``seed + i``."""
    max_rows: int = 256
    """Largest forward batch (restorations × samples)."""

    def __post_init__(self) -> None:
        if self.samples < 1 or self.window < 1 or self.max_rows < 1:
            raise ConfigError("samples, window and max_rows must be >= 1")
        if self.noise_reference not in ("embedding_matrix", "subjects"):
            raise ConfigError(f"noise_reference must be 'embedding_matrix' or 'subjects', got {self.noise_reference!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FactTrace:
    """The causal trace of one fact for one kind of restored state."""

    prompt: str
    """Prompt text."""
    str_tokens: tuple[str, ...]
    """Prompt tokens as strings (BOS first) — the heatmap's x labels."""
    subject_pos: tuple[int, ...]
    """Token positions of the subject (noised)."""
    answer: int
    """Answer token id."""
    kind: str
    """``resid``, ``mlp`` or ``attn``."""
    sever: Optional[str]
    """``None``, ``mlp`` or ``attn``: modules frozen at corrupted values while restoring."""
    scores: Float[Tensor, "n_layers n_pos"]
    """Mean answer probability with the state at (layer, position) restored (heatmap-ready)."""
    p_clean: float
    """Answer probability on the clean prompt."""
    p_corrupted: float
    """Mean answer probability with the subject noised and nothing restored."""

    @property
    def indirect_effect(self) -> Tensor:
        return self.scores - self.p_corrupted

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("prompt", "answer", "kind", "sever", "p_clean", "p_corrupted")}
        return {**d, "str_tokens": list(self.str_tokens), "subject_pos": list(self.subject_pos),
                "scores": self.scores.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "FactTrace":
        return cls(d["prompt"], tuple(d["str_tokens"]), tuple(d["subject_pos"]), d["answer"], d["kind"], d["sever"],
                   torch.tensor(d["scores"]), d["p_clean"], d["p_corrupted"])


@dataclass(frozen=True)
class CausalTraceResult:
    """Causal traces of a fact set plus the average indirect effects."""

    traces: tuple[FactTrace, ...]
    """Per fact and kind (heatmaps ``[n_layers, n_pos]``)."""
    aie: dict
    """``trace label -> [n_layers, 6]`` average indirect effect per token category (see ``CATEGORIES``)."""
    te: float
    """Total effect: mean over facts of ``p_clean - p_corrupted``."""
    noise_std: float
    """Absolute noise std used."""
    config: dict
    """The :class:`TracingConfig` as a dict (samples, seed, window, noise reference, ...)."""
    meta: dict = field(default_factory=dict)
    """Provenance: model, method, number of facts, categories."""
    schema_version: int = SCHEMA_VERSION
    """On-disk schema version."""

    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "method": "causal_tracing", "te": self.te,
                "noise_std": self.noise_std, "config": self.config, "meta": self.meta,
                "categories": list(CATEGORIES), "aie": {k: v.tolist() for k, v in self.aie.items()},
                "traces": [t.to_dict() for t in self.traces]}

    @classmethod
    def from_dict(cls, d: dict) -> "CausalTraceResult":
        if d.get("schema_version") != SCHEMA_VERSION:
            raise InterpbenchError(f"causal tracing record has schema_version {d.get('schema_version')}, this "
                                   f"interpbench reads {SCHEMA_VERSION}; rerun the recipe")
        return cls(tuple(FactTrace.from_dict(t) for t in d["traces"]),
                   {k: torch.tensor(v) for k, v in d["aie"].items()}, d["te"], d["noise_std"], d["config"],
                   d.get("meta", {}))


def _label(kind: str, sever: Optional[str]) -> str:
    return kind if sever is None else f"{kind}_sever_{sever}"


@torch.no_grad()
def embedding_std(model, reference: str = "embedding_matrix", facts: Sequence = ()) -> float:
    """Std of token embeddings: over the whole embedding matrix, or over the facts' subject tokens."""
    if reference == "embedding_matrix":
        return float(model.hf.get_input_embeddings().weight.float().std())
    if not facts:
        raise InterpbenchError("noise_reference='subjects' needs the fact set")
    vals = []
    for f in facts:
        _, cache = model.run_with_cache(f.tokens[None], ["hook_embed"])
        vals.append(cache["hook_embed"][0, list(f.subject_pos)].float().reshape(-1))
    return float(torch.cat(vals).std())


def _window(layer: int, n_layers: int, window: int) -> range:
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


def _noise(fact, samples: int, d_model: int, std: float, seed: int, device, dtype) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    n = torch.zeros(samples, len(fact.tokens), d_model)  # [samples pos d_model]
    pos = list(fact.subject_pos)
    n[:, pos] = torch.randn(samples, len(pos), d_model, generator=g) * std
    return n.to(device=device, dtype=dtype)


def _answer_prob(logits: Tensor, answer: int) -> Tensor:
    return logits[:, -1].float().softmax(-1)[:, answer]  # [rows]


def _restore(clean: Tensor, mask: Tensor) -> Replace:
    """Replace rows/positions where ``mask`` [rows pos 1] is true by the clean state [1 pos d]."""
    return Replace(lambda act: torch.where(mask, clean.to(act.dtype), act), name="restore_clean")


@torch.no_grad()
def trace_fact(model, fact, kind: str = "resid", sever: Optional[str] = None,
               cfg: TracingConfig = TracingConfig(), noise_std: Optional[float] = None, seed: Optional[int] = None,
               positions: Optional[Sequence[int]] = None, fast: bool = True) -> FactTrace:
    """Causal trace of one fact (steps 1–4 of the module docstring).

    ``fact`` needs ``tokens`` [pos], ``subject_pos`` and ``answer`` (see
    :class:`interpbench.tasks.facts.Fact`); ``positions`` restricts the restored positions
    (others get NaN). ``fast=True`` does not recompute the blocks before the first restored
    layer: those runs start at that block from the corrupted run's cached ``resid_pre``
    (equal to ``fast=False``, which reruns the whole model; see the tests).
    """
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {KINDS}, got {kind!r}")
    if sever not in (None, "mlp", "attn") or (sever is not None and kind != "resid"):
        raise ConfigError("sever must be None, 'mlp' or 'attn', and only with kind='resid'")
    L, S = model.cfg.n_layers, cfg.samples
    std = noise_std if noise_std is not None else (cfg.noise_std or cfg.noise_scale * embedding_std(model))
    tokens = fact.tokens.to(model.device)
    n_pos = tokens.shape[0]
    site = _SITE[kind]
    logits, clean = model.run_with_cache(tokens[None], f"blocks.*.{site}")  # [1 pos d] per layer
    p_clean = float(_answer_prob(logits, fact.answer)[0])
    noise = _noise(fact, S, model.cfg.d_model, std, cfg.seed if seed is None else seed, model.device, model.dtype)
    toks = tokens[None].expand(S, n_pos)
    sever_names = [f"blocks.{j}.{_SITE[sever]}" for j in range(L)] if sever else []
    want = sever_names + (["blocks.*.hook_resid_pre"] if fast else [])
    logits, corrupt = model.run_with_cache(toks, want or "hook_embed", interventions={"hook_embed": Add(noise)})
    p_corrupted = float(_answer_prob(logits, fact.answer).mean())

    positions = list(range(n_pos)) if positions is None else sorted({p % n_pos for p in positions})
    restored = {layer: list(_window(layer, L, cfg.window)) if kind != "resid" else [layer] for layer in range(L)}
    configs = [(layer, p) for layer in range(L) for p in positions]
    # group by the first restored layer: a fast run starts there (the naive path puts all in one group)
    groups: dict[int, list] = {}
    for layer, p in configs:
        groups.setdefault(restored[layer][0] if fast else 0, []).append((layer, p))
    scores = torch.full((L, n_pos), float("nan"))
    per_chunk = max(1, cfg.max_rows // S)
    for start_layer, group in groups.items():
        for first in range(0, len(group), per_chunk):
            part = group[first:first + per_chunk]
            probs = _restored_probs(model, toks, part, restored, site, clean, noise, corrupt, sever_names,
                                    start_layer if fast else None, fact.answer)
            for c, (layer, p) in enumerate(part):
                scores[layer, p] = probs[c]
    str_tokens = tuple(model.tokenizer.decode([t]) for t in tokens.tolist())
    return FactTrace(getattr(fact, "prompt", ""), str_tokens, tuple(fact.subject_pos), int(fact.answer), kind, sever,
                     scores, p_clean, p_corrupted)


def _restored_probs(model, toks: Tensor, part: list, restored: dict, site: str, clean: dict, noise: Tensor,
                    corrupt: dict, sever_names: list, start_layer: Optional[int], answer: int) -> Tensor:
    """Mean answer probability over noise draws for each restoration in ``part``: ``[len(part)]``."""
    L = model.cfg.n_layers
    S, n_pos = toks.shape
    C = len(part)
    lo = start_layer or 0
    ivs: dict = {}  # rows: config c, sample s at c*S+s
    if start_layer is None:
        ivs["hook_embed"] = Add(noise.repeat(C, 1, 1))
    else:
        resid_in = corrupt[f"blocks.{lo}.hook_resid_pre"].repeat(C, 1, 1)  # [C*S pos d_model]
        ivs[f"blocks.{lo}.hook_resid_pre"] = Replace(lambda act: resid_in, name="start_corrupted")
    for name in sever_names:
        if int(name.split(".")[1]) >= lo:
            ivs[name] = Patch(corrupt[name].repeat(C, 1, 1))
    masks = torch.zeros(L, C, n_pos, dtype=torch.bool)  # which (row-config, pos) each layer restores
    for c, (layer, p) in enumerate(part):
        for j in restored[layer]:
            masks[j, c, p] = True
    for j in range(lo, L):
        if masks[j].any():
            m = masks[j].repeat_interleave(S, dim=0)[..., None].to(toks.device)  # [C*S pos 1]
            name = f"blocks.{j}.{site}"
            ivs[name] = [ivs[name], _restore(clean[name], m)] if name in ivs else _restore(clean[name], m)
    with model.trace(interventions=ivs):
        if start_layer is None:
            logits = model(toks.repeat(C, 1))
        else:
            from .patching.activation import start_at_layer

            with start_at_layer(model, lo):
                logits = model(toks.repeat(C, 1))
    return _answer_prob(logits, answer).view(C, S).mean(-1).cpu()  # [C]


def token_categories(subject_pos: Sequence[int], n_pos: int) -> dict[str, list[int]]:
    """ROME's token categories for a prompt of ``n_pos`` tokens (lists may be empty or overlap)."""
    first, last = min(subject_pos), max(subject_pos)
    return {"first_subject": [first], "middle_subject": list(range(first + 1, last)), "last_subject": [last],
            "first_subsequent": [last + 1] if last + 1 < n_pos else [],
            "further": list(range(last + 2, n_pos - 1)), "last": [n_pos - 1]}


def average_indirect_effect(traces: Sequence[FactTrace]) -> Float[Tensor, "n_layers 6"]:
    """AIE per layer and token category: mean over facts of the category-mean indirect effect."""
    L = traces[0].scores.shape[0]
    total = torch.zeros(L, len(CATEGORIES))
    count = torch.zeros(len(CATEGORIES))
    for t in traces:
        ie = t.indirect_effect  # [L pos]
        for k, cat in enumerate(CATEGORIES):
            pos = token_categories(t.subject_pos, ie.shape[1])[cat]
            vals = ie[:, pos] if pos else None
            if vals is not None and not torch.isnan(vals).any():
                total[:, k] += vals.mean(-1)
                count[k] += 1
    return total / count.clamp(min=1) + torch.where(count > 0, 0.0, float("nan"))


def causal_trace(model, facts: Sequence, kinds: Sequence[str] = KINDS, severs: Sequence[Optional[str]] = (),
                 cfg: TracingConfig = TracingConfig(), positions: str = "all", progress: bool = False,
                 fast: bool = True) -> CausalTraceResult:
    """Causal traces of every fact for every kind (plus severed ``resid`` traces), with AIE and TE.

    ``severs``: e.g. ``("mlp", "attn")`` adds ``resid`` traces with MLPs / attention frozen.
    ``positions``: ``all`` restores every position; ``categories`` only the positions of the
    AIE categories other than ``further`` (subject tokens, first subsequent, last) — cheaper,
    and the heatmaps hold NaN elsewhere.
    """
    if positions not in ("all", "categories"):
        raise ConfigError(f"positions must be 'all' or 'categories', got {positions!r}")
    facts = list(facts)
    if not facts:
        raise InterpbenchError("causal tracing got no facts; check load_facts()/check_facts() output")
    ref = embedding_std(model, cfg.noise_reference, facts)
    std = cfg.noise_std if cfg.noise_std is not None else cfg.noise_scale * ref
    runs = [(k, None) for k in kinds] + [("resid", s) for s in severs]
    it = [(i, f, k, s) for i, f in enumerate(facts) for k, s in runs]
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="causal tracing", unit="trace")
    def where(f) -> Optional[list[int]]:
        if positions == "all":
            return None
        cats = token_categories(f.subject_pos, len(f.tokens))
        return sorted({p for c in CATEGORIES if c != "further" for p in cats[c]})

    traces = [trace_fact(model, f, k, s, cfg, noise_std=std, seed=cfg.seed + i, positions=where(f), fast=fast)
              for i, f, k, s in it]
    aie = {}
    for k, s in runs:
        aie[_label(k, s)] = average_indirect_effect([t for t in traces if (t.kind, t.sever) == (k, s)])
    first = [t for t in traces if (t.kind, t.sever) == runs[0]]
    te = sum(t.p_clean - t.p_corrupted for t in first) / len(first)
    return CausalTraceResult(tuple(traces), aie, te, std, cfg.to_dict(),
                             {"method": "causal_tracing", "paper": "Meng et al. 2022", "model": model.cfg.name,
                              "n_facts": len(facts), "reference_std": ref,
                              "positions": positions, "fast": fast, "kinds": [_label(k, s) for k, s in runs],
                              "categories": list(CATEGORIES)})


__all__ = ["TracingConfig", "FactTrace", "CausalTraceResult", "trace_fact", "causal_trace", "embedding_std",
           "average_indirect_effect", "token_categories", "KINDS", "CATEGORIES"]
