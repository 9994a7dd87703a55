"""Configuration of a labelling job: data, validated on construction, hashed into the ledger.

A job is identified by (source, explainer, scorers) plus the hash of everything else; a
ledger opened with a config that differs is refused with the differing fields named.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from typing import Optional

from ..errors import ConfigError

SCHEMA_VERSION = 1
SCORER_NAMES = ("detection", "fuzzing", "simulation", "embedding", "intervention")


def _is_llm(spec: str) -> bool:
    return spec == "local" or spec.startswith(("local:", "openai:"))


def parse_features(spec: str) -> tuple[int, int]:
    """``"0:500"`` → ``(0, 500)`` (half-open); ``"7"`` → ``(7, 8)``."""
    m = re.fullmatch(r"\s*(\d+)\s*(?::\s*(\d+)\s*)?", str(spec))
    if not m:
        raise ConfigError(f"--features {spec!r} is not START:STOP (e.g. 0:500) or one index")
    start = int(m.group(1))
    stop = int(m.group(2)) if m.group(2) is not None else start + 1
    if stop <= start:
        raise ConfigError(f"--features {spec!r} is empty; STOP must be greater than START")
    return start, stop


@dataclass(frozen=True)
class LabelConfig:
    """Everything that determines a labelling job's results."""

    source: str
    """Latent source: ``sae:DIR``, ``neurons:MODEL:SITE`` or ``synthetic:MODEL``."""
    features: str = "0:50"
    """Half-open range ``START:STOP`` of latent indices to label."""
    explainer: str = "tokens"
    """``local`` (bundled SmolLM2; ``local:SPEC`` another local model), ``tokens``, ``logit-lens`` or
    ``openai:URL[,URL...]``."""
    scorers: tuple[str, ...] = ("detection", "embedding")
    """Scorers to run, a subset of detection, fuzzing, simulation, embedding, intervention."""
    judge: str = "local"
    """LLM used by detection/fuzzing/simulation: ``local[:SPEC]`` or ``openai:URL[,URL...]``."""
    llm_model: str = "default"
    """Model name sent to OpenAI-compatible endpoints (ignored by the local backend)."""
    corpus: str = "default"
    """Corpus name for :func:`interpbench.corpus.load_corpus` (built-in fallback if absent)."""
    n_docs: int = 96
    """Documents of the corpus to harvest."""
    ctx_len: int = 24
    """Tokens per example window (BOS excluded)."""
    windows_per_doc: int = 4
    """At most this many windows per document."""
    n_explain_top: int = 5
    """Top-activating windows shown to the explainer."""
    n_explain_quantile: int = 3
    """Extra explanation windows drawn across activation quantiles."""
    n_score_pos: int = 6
    """Activating scoring windows (stratified over quantiles)."""
    n_score_neg: int = 6
    """Non-activating scoring windows (random)."""
    score_context: int = 10
    """Scoring examples are cropped to this many tokens around their peak (0: whole window)."""
    active_frac: float = 0.1
    """A window activates when its max exceeds this fraction of the latent's max."""
    min_active: int = 2
    """Fewer activating windows than this in either split: the latent is recorded as dead."""
    max_new_tokens: int = 30
    """Generation budget of the LLM explainer."""
    max_attempts: int = 3
    """A feature failing this many times is marked failed with its error."""
    seed: int = 0
    """Seed for every random choice (splits, samples, controls)."""
    harvest_batch: int = 8
    """Windows per forward pass while harvesting."""

    def __post_init__(self) -> None:
        parse_features(self.features)
        if not isinstance(self.scorers, tuple):
            object.__setattr__(self, "scorers", tuple(self.scorers))
        bad = [s for s in self.scorers if s not in SCORER_NAMES]
        if bad:
            raise ConfigError(f"unknown scorer(s) {bad}; choose from {', '.join(SCORER_NAMES)}")
        if len(set(self.scorers)) != len(self.scorers):
            raise ConfigError(f"scorers {list(self.scorers)} list a scorer twice")
        if not (self.explainer in ("tokens", "logit-lens") or _is_llm(self.explainer)):
            raise ConfigError(f"--explainer {self.explainer!r}: use local, tokens, logit-lens or openai:URL")
        if not _is_llm(self.judge):
            raise ConfigError(f"judge {self.judge!r}: use local or openai:URL")
        if not self.source.startswith(("sae:", "neurons:", "synthetic:")):
            raise ConfigError(f"source {self.source!r}: use sae:DIR, neurons:MODEL:SITE or synthetic:MODEL")
        for f in ("n_docs", "ctx_len", "windows_per_doc", "n_explain_top", "n_score_pos", "n_score_neg",
                  "max_attempts", "harvest_batch", "min_active"):
            if getattr(self, f) < 1:
                raise ConfigError(f"{f} must be >= 1, got {getattr(self, f)}")
        if not 0.0 < self.active_frac < 1.0:
            raise ConfigError(f"active_frac must be in (0, 1), got {self.active_frac}")

    @property
    def feature_range(self) -> range:
        return range(*parse_features(self.features))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scorers"] = list(self.scorers)
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LabelConfig":
        d = dict(d)
        d.pop("schema_version", None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown label config field(s) {unknown}; known: {sorted(known)}")
        if "scorers" in d:
            d["scorers"] = tuple(d["scorers"].split(",")) if isinstance(d["scorers"], str) else tuple(d["scorers"])
        return cls(**d)

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def job_id(self) -> str:
        """Default job name: source, explainer and scorers (readable) + hash of the identity."""
        ident = json.dumps([self.source, self.explainer, list(self.scorers)])
        slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{self.source}-{self.explainer}").strip("-")[-60:]
        return f"{slug}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"

    def diff(self, other: "LabelConfig") -> list[str]:
        """``field: mine != theirs`` for every differing field."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def source_spec(sae: Optional[str], neurons: Optional[str], synthetic: Optional[str] = None) -> str:
    given = [x for x in (sae, neurons, synthetic) if x]
    if len(given) != 1:
        raise ConfigError("give exactly one of --sae DIR, --neurons MODEL:SITE (or --synthetic MODEL)")
    if sae:
        return f"sae:{sae}"
    if neurons:
        if ":" not in neurons:
            raise ConfigError(f"--neurons {neurons!r} must be MODEL:SITE, e.g. smollm2-135m:blocks.5.mlp.hook_post")
        return f"neurons:{neurons}"
    return f"synthetic:{synthetic}"
