"""Per-latent example sets, with explanation and scoring examples from disjoint documents.

1. Split the harvested documents once per job: a seeded permutation of the document ids,
   first half for **explanation**, second half for **scoring**. No document is in both.
2. For latent ``f``: window max ``m_w = max_pos a[w, pos, f]``, latent max ``M = max_w m_w``.
   ``M <= 0`` → dead ("never activates"). A window *activates* when ``m_w > active_frac·M``.
3. Explanation set: the ``n_explain_top`` top windows of the explanation documents, plus
   ``n_explain_quantile`` windows at evenly spaced ranks of the remaining activating ones.
4. Scoring set: ``n_score_pos`` activating windows of the scoring documents, one drawn at
   random from each of ``n_score_pos`` equal-count activation bins (quantile-stratified),
   and ``n_score_neg`` random non-activating windows of the scoring documents. Scoring
   examples are cropped to ``score_context`` tokens: activating ones so that their peak
   token sits 3 tokens before the end, non-activating ones at a seeded random offset.
5. Fewer than ``min_active`` activating windows in either split, or no non-activating window
   (a dense latent) → skipped, with the counts (the ledger status is ``skipped``, not ``dead``).
6. :meth:`FeatureExamples.check_disjoint` is called on construction: a scoring example
   sharing a document with an explanation example raises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import InterpbenchError


class LeakError(InterpbenchError):
    """An explanation example and a scoring example share a document."""


@dataclass(frozen=True)
class ActivationRecord:
    """One window of text with the latent's activation at each token."""

    doc: int
    """Document index (within the harvested documents)."""
    window: int
    """Window index in the harvest."""
    tokens: list
    """Token strings."""
    acts: list
    """Activation per token (same length as ``tokens``)."""

    @property
    def max_act(self) -> float:
        return max(self.acts) if self.acts else 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ActivationRecord":
        return cls(int(d["doc"]), int(d["window"]), list(d["tokens"]), [float(a) for a in d["acts"]])


@dataclass(frozen=True)
class FeatureExamples:
    """The example sets of one latent."""

    feature: int
    """Latent index."""
    max_act: float
    """Largest activation over all harvested windows."""
    explain: list
    """Explanation examples (ActivationRecord), top first."""
    score_pos: list
    """Activating scoring examples (quantile-stratified)."""
    score_neg: list
    """Non-activating scoring examples (random)."""
    dead: Optional[str] = None
    """Why the latent gets no explanation, or None: ``never activates ...`` (status ``dead``) or
    ``too few ...`` activating / non-activating windows (status ``skipped``)."""
    schema_version: int = 1
    """On-disk format version."""

    def __post_init__(self) -> None:
        self.check_disjoint()

    def check_disjoint(self) -> None:
        shared = {r.doc for r in self.explain} & {r.doc for r in self.score_pos + self.score_neg}
        if shared:
            raise LeakError(f"feature {self.feature}: scoring examples share documents {sorted(shared)[:5]} "
                            f"with explanation examples")

    def to_dict(self) -> dict:
        return {"feature": self.feature, "max_act": self.max_act, "dead": self.dead,
                "explain": [r.to_dict() for r in self.explain],
                "score_pos": [r.to_dict() for r in self.score_pos],
                "score_neg": [r.to_dict() for r in self.score_neg], "schema_version": self.schema_version}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureExamples":
        rec = lambda xs: [ActivationRecord.from_dict(x) for x in xs]  # noqa: E731
        return cls(int(d["feature"]), float(d["max_act"]), rec(d["explain"]), rec(d["score_pos"]),
                   rec(d["score_neg"]), d.get("dead"))


def split_docs(doc: torch.Tensor, seed: int) -> tuple[set, set]:
    """(explanation documents, scoring documents): a seeded half/half split of the ids."""
    ids = np.unique(doc.numpy())
    perm = np.random.default_rng(seed).permutation(ids)
    half = len(perm) // 2
    return set(perm[:half].tolist()), set(perm[half:].tolist())


def sample_examples(h, feature: int, cfg, token_strs) -> FeatureExamples:
    """Example sets for ``feature`` from a :class:`~.harvest.Harvest` (steps 2-6).

    ``token_strs(window) -> list[str]`` decodes a window's tokens.
    """
    a = h.acts[:, :, h.column(feature)]  # [window pos]
    wmax = a.max(dim=1).values  # [window]
    top = float(wmax.max())
    if not top > 0:
        return FeatureExamples(feature, top, [], [], [], dead=f"never activates (max {top:.3g})")
    explain_docs, score_docs = split_docs(h.doc, cfg.seed)
    in_explain = torch.tensor([int(d) in explain_docs for d in h.doc.tolist()])
    active = wmax > cfg.active_frac * top
    ex_pool = torch.nonzero(active & in_explain).flatten()
    sc_pool = torch.nonzero(active & ~in_explain).flatten()
    neg_pool = torch.nonzero(~active & ~in_explain).flatten()
    if len(ex_pool) < cfg.min_active or len(sc_pool) < cfg.min_active or len(neg_pool) < 1:
        return FeatureExamples(feature, top, [], [], [], dead=(
            f"too few activating windows: {len(ex_pool)} in explanation docs, {len(sc_pool)} in scoring docs, "
            f"{len(neg_pool)} non-activating (need {cfg.min_active}, {cfg.min_active}, 1)"))
    rng = np.random.default_rng([cfg.seed, feature])
    rec = lambda w: ActivationRecord(int(h.doc[w]), int(w), token_strs(int(w)), [round(float(x), 4) for x in a[w]])  # noqa: E731
    n = a.shape[1]
    k = cfg.score_context if 0 < cfg.score_context < n else n

    def crop(w: int, start: int) -> ActivationRecord:
        r = rec(w)
        start = max(0, min(start, n - k))
        return ActivationRecord(r.doc, r.window, r.tokens[start:start + k], r.acts[start:start + k])

    order = ex_pool[torch.argsort(wmax[ex_pool], descending=True, stable=True)].tolist()
    chosen = order[:cfg.n_explain_top]
    rest = order[cfg.n_explain_top:]
    if rest and cfg.n_explain_quantile:
        idx = np.unique(np.linspace(0, len(rest) - 1, min(cfg.n_explain_quantile, len(rest))).round().astype(int))
        chosen += [rest[i] for i in idx]

    sc_sorted = sc_pool[torch.argsort(wmax[sc_pool], stable=True)].tolist()
    bins = np.array_split(np.arange(len(sc_sorted)), min(cfg.n_score_pos, len(sc_sorted)))
    pos = [sc_sorted[int(rng.choice(b))] for b in bins if len(b)]
    neg = rng.choice(neg_pool.numpy(), size=min(cfg.n_score_neg, len(neg_pool)), replace=False).tolist()
    pos_recs = [crop(w, int(a[w].argmax()) - k + 3) for w in pos]
    neg_recs = [crop(w, int(rng.integers(n - k + 1))) for w in sorted(neg)]
    return FeatureExamples(feature, top, [rec(w) for w in chosen], pos_recs, neg_recs)
