"""``load(name) -> GroundTruth``: a shipped model, its true circuit and its task.

1. Read the committed artifacts in ``interpbench/groundtruth/weights/`` (safetensors +
   JSON; torch and safetensors only, no jax).
2. Rebuild the torch module, wrap it as a :class:`~interpbench.models.model.HookedModel`
   with TransformerLens site names.
3. Return the true edges (node-id convention of :mod:`interpbench.groundtruth.nodes`),
   all candidate edges, and a task factory ``make_task(n, seed) -> GroundTruthTask``.

Tasks and metrics (each ``metric(logits, pairs=None)`` maps logits ``[batch pos d_out]`` to ``[batch]``):

- ``induction``: clean = random tokens with a segment repeated at the end, corrupted = the
  same with the whole first half resampled (:func:`~.induction_data.induction_pairs`);
  metric ``logit[answer] - mean(logits)`` at the last position (also ``logprob``).
- ``tracr-reverse`` (ACDC's setup): BOS + a permutation of {1, 2, 3}; corrupted = another
  permutation (a derangement of the rows); metric ``correct_logit``: summed over
  positions 1.., the output logit of the reversed token minus the mean output logit.
  ``l2`` is ACDC's metric, ``sum((logits[:, 1:] - clean_logits[:, 1:])**2)`` per prompt
  (zero with zero gradient at the clean run: use it for ACDC, not for plain EAP).
- ``tracr-proportion``: BOS + 4 tokens of {w, x, y, z}; corrupted = another random prompt;
  metric ``output``: the program's numerical output (fraction of "x" so far) summed over
  positions 1..; ``l2`` as for reverse on that output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import Tensor

from ..errors import InterpbenchError

WEIGHTS_DIR = Path(__file__).parent / "weights"
NAMES = ("induction", "tracr-reverse", "tracr-proportion")


@dataclass(frozen=True)
class GroundTruthTask:
    """Clean/corrupted prompts for a ground-truth model and the metrics to score them."""

    pairs: object
    """:class:`~interpbench.tasks.base.PromptPairs` (``answer``/``wrong`` at the last position)."""
    metric: Callable[..., Tensor]
    """Default metric ``metric(logits, pairs=None) -> [batch]`` on logits ``[batch pos d_out]``; the
    quantity whose clean-vs-corrupted change methods attribute. ``pairs`` is accepted and
    ignored, so it plugs into :mod:`interpbench.graphs` as a ``(logits, pairs)`` metric."""
    metric_name: str
    """Name of the default metric (a key of ``metrics``)."""
    metrics: dict = field(default_factory=dict)
    """All metrics for this task by name, same signature as ``metric``."""


@dataclass(frozen=True)
class GroundTruth:
    """A model whose circuit is known, with that circuit and a task that exercises it."""

    name: str
    """``induction``, ``tracr-reverse`` or ``tracr-proportion``."""
    model: object
    """The :class:`~interpbench.models.model.HookedModel` to trace."""
    truth: tuple[tuple[str, str], ...]
    """True edges ``(sender, receiver port)``; every other candidate edge is absent."""
    nodes: tuple[str, ...]
    """All node ids of the model graph, in forward order."""
    edges: tuple[tuple[str, str], ...]
    """All candidate edges (the universe the truth is a subset of)."""
    make_task: Callable[..., GroundTruthTask]
    """``make_task(n=..., seed=0) -> GroundTruthTask``."""
    meta: dict = field(default_factory=dict)
    """The artifact's JSON record (config, training figures, ablation numbers, ...)."""

    def truth_for(self, ablation: str) -> tuple[tuple[str, str], ...]:
        """The true edges that ``ablation`` (zero, mean, resample) can detect on this task.

        A true edge whose receiver sees the same value on clean and corrupted prompts (e.g.
        positional inputs under resample ablation, where the corrupted prompt has the same
        positions) has exactly zero effect under that ablation; the artifact records which
        true edges have a measurable effect per ablation. ``truth`` is the full circuit.
        """
        rec = self.meta["truth"] if self.name == "induction" else self.meta
        by = rec.get("edges_by_ablation", {})
        if ablation not in by:
            raise InterpbenchError(f"no per-ablation truth for {ablation!r} in {self.name}; use one of "
                                   f"{', '.join(sorted(by))}")
        return tuple(tuple(e) for e in by[ablation])

    def labels(self, ablation: Optional[str] = None) -> Tensor:
        """1.0 for true edges (of ``truth_for(ablation)`` if given), 0.0 otherwise, aligned with ``edges``."""
        t = set(self.truth if ablation is None else self.truth_for(ablation))
        return torch.tensor([1.0 if e in t else 0.0 for e in self.edges])


def _read_json(path: Path) -> dict:
    if not path.exists():
        raise InterpbenchError(f"ground-truth artifact {path} is missing; rebuild it (see interpbench/groundtruth/weights/README.md)")
    rec = json.loads(path.read_text())
    if rec.get("schema_version") != 1:
        raise InterpbenchError(f"{path} has schema_version {rec.get('schema_version')!r}; this interpbench reads 1")
    return rec


def load_induction_module(root: Path = WEIGHTS_DIR):
    """``(AttnOnlyTransformer, HookedModel)`` from ``induction.safetensors``."""
    from safetensors.torch import load_file

    from .attn_only import AttnOnlyConfig, AttnOnlyTransformer, hooked_attn_only

    rec = _read_json(root / "induction_config.json")
    module = AttnOnlyTransformer(AttnOnlyConfig.from_dict(rec["config"]))
    module.load_state_dict(load_file(str(root / "induction.safetensors")))
    return module, hooked_attn_only(module, name="induction")


def _induction(root: Path) -> GroundTruth:
    from .induction_data import induction_pairs
    from .induction_truth import centered_answer_logit
    from .nodes import candidate_edges, node_ids

    module, hooked = load_induction_module(root)
    truth = _read_json(root / "induction_truth.json")
    c = module.cfg

    def make_task(n: int = 32, seed: int = 0) -> GroundTruthTask:
        pairs = induction_pairs(n, seed=seed, d_vocab=c.d_vocab).to(hooked.device)
        ans = pairs.answer
        metrics = {"centered_logit": lambda logits, pairs=None: centered_answer_logit(logits, ans),
                   "logprob": lambda logits, pairs=None: torch.log_softmax(logits[:, -1], -1).gather(-1, ans[:, None])[:, 0]}
        return GroundTruthTask(pairs, metrics["centered_logit"], "centered_logit", metrics)

    meta = {"config": _read_json(root / "induction_config.json"), "truth": truth}
    return GroundTruth("induction", hooked, tuple(tuple(e) for e in truth["edges"]),
                       tuple(node_ids(c.n_layers, c.n_heads, mlp=False)),
                       tuple(candidate_edges(c.n_layers, c.n_heads, mlp=False)), make_task, meta)


def _tracr(name: str, root: Path) -> GroundTruth:
    from .nodes import candidate_edges, node_ids
    from .tracr_model import load_tracr, tracr_task

    module, hooked, rec = load_tracr(name, root)
    c = module.cfg

    def make_task(n: int = 6, seed: int = 0) -> GroundTruthTask:
        return tracr_task(name, hooked, rec, n=n, seed=seed)

    return GroundTruth(name, hooked, tuple(tuple(e) for e in rec["edges"]),
                       tuple(node_ids(c.n_layers, c.n_heads, mlp=True)),
                       tuple(candidate_edges(c.n_layers, c.n_heads, mlp=True)), make_task, rec)


def load(name: str, root: Path = WEIGHTS_DIR) -> GroundTruth:
    """The ground-truth model ``name`` (one of :data:`NAMES`), freshly built (tiny: milliseconds)."""
    if name not in NAMES:
        raise InterpbenchError(f"unknown ground-truth model {name!r}; choose one of {', '.join(NAMES)}")
    root = Path(root)
    return _induction(root) if name == "induction" else _tracr(name, root)
