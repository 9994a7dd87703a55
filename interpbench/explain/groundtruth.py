"""Ground truth for the labelling pipeline: synthetic latents with known descriptions.

1. Build a :class:`~.sources.SyntheticSource` (latents firing on digits, capitalised words,
   sentence starts, the bigram "of the", punctuation; one dead latent) over a model's tokenizer.
2. Run the real pipeline stages: harvest the corpus, sample examples (disjoint documents).
3. **Ranking**: for every live latent and every scorer, score the true description and
   every other latent's description (the distractors) on that latent's scoring examples;
   the latent counts as ranked correctly when the true description scores strictly highest.
   ``ranking accuracy = correct / live latents``, per scorer. Ties at the top are reported
   too: ``ties_split`` credits ``1/(1 + tied distractors)`` when no distractor scores higher
   (chance is 1/latents either way; a judge that gives every description the same score gets
   0 strict and chance tie-split).
4. **Recovery**: the top-tokens explainer recovers a token-class latent when every token it
   names satisfies the latent's rule (e.g. all digits for ``digits``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .examples import sample_examples
from .sources import SYNTHETIC_LATENTS, SyntheticSource, _strip

TOKEN_CLASS = {
    "digits": lambda s: bool(re.fullmatch(r"\d+", s)),
    "capitalised": lambda s: bool(re.fullmatch(r"[A-Z][a-z]+", s)),
    "punctuation": lambda s: s in {",", ".", ";", ":", "!", "?"},
}
"""Token-class latents and the test a recovered token must pass."""


@dataclass(frozen=True)
class GroundTruthReport:
    """Ranking accuracy per scorer and top-tokens recovery."""

    ranking_accuracy: dict
    """Scorer → fraction of live latents whose true description scored highest."""
    ranks: dict
    """Scorer → {latent name: rank of the true description (1 = best)}."""
    recovered: dict
    """Token-class latent name → True when the top-tokens explanation names only its class."""
    explanations: dict
    """Latent name → top-tokens explanation."""
    ties_split: dict = None
    """Scorer → ranking accuracy with ties at the top shared (see the module docstring)."""
    scores: dict = None
    """Scorer → {latent: {description's latent: score}}."""

    def to_dict(self) -> dict:
        return {"ranking_accuracy": self.ranking_accuracy, "ranking_accuracy_ties_split": self.ties_split,
                "ranks": self.ranks, "scores": self.scores, "recovered": self.recovered,
                "explanations": self.explanations, "schema_version": 1}


def run_ground_truth(pipe, scorers: dict) -> GroundTruthReport:
    """``pipe``: a :class:`~.job.Pipeline` over a synthetic source; ``scorers``: name → Scorer."""
    from .explainers import TopTokensExplainer

    src: SyntheticSource = pipe.source
    h = pipe.harvest()
    exs = {}
    for f in h.features:
        ex = sample_examples(h, f, pipe.cfg, pipe.token_strs)
        if not ex.dead:
            exs[src.keys[f]] = ex
    descs = {k: SYNTHETIC_LATENTS[k][0] for k in exs}
    ranks: dict = {}
    split: dict = {}
    all_scores: dict = {}
    for sname, scorer in scorers.items():
        ranks[sname], credit, all_scores[sname] = {}, [], {}
        for key, ex in exs.items():
            scores = {k: scorer.metrics(*scorer.judge(d, ex).kept())["score"] for k, d in descs.items()}
            all_scores[sname][key] = scores
            true = scores[key]
            ranks[sname][key] = 1 + sum(v is not None and (true is None or v >= true) for k, v in scores.items()
                                        if k != key)
            higher = sum(v is not None and (true is None or v > true) for k, v in scores.items() if k != key)
            tied = sum(v is not None and true is not None and v == true for k, v in scores.items() if k != key)
            credit.append(0.0 if higher or true is None else 1.0 / (1 + tied))
        split[sname] = sum(credit) / max(1, len(credit))
    acc = {s: sum(r == 1 for r in rk.values()) / max(1, len(rk)) for s, rk in ranks.items()}
    tt = TopTokensExplainer()
    expl, recovered = {}, {}
    for key, ex in exs.items():
        e = tt.explain(ex)
        expl[key] = e.text
        if key in TOKEN_CLASS:
            toks = re.findall(r'"([^"]*)"', e.text)
            recovered[key] = bool(toks) and all(TOKEN_CLASS[key](_strip(t)) for t in toks)
    return GroundTruthReport(acc, ranks, recovered, expl, split, all_scores)
