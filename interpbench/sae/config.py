"""SAE and training configs: frozen, validated dataclasses with a docstring per field."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

from ..errors import ConfigError

SCHEMA_VERSION = 1


def _from_dict(cls, d: dict, what: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {what} field(s) {unknown}; known: {sorted(known)}")
    return cls(**d)


@dataclass(frozen=True)
class SAEConfig:
    """Shape and kind of one sparse autoencoder (or transcoder). Stored as ``cfg.json``."""

    arch: str
    """Architecture name from the registry: ``relu``, ``topk``, ``batchtopk`` or ``jumprelu``."""
    d_in: int
    """Width of the input activations."""
    d_sae: int
    """Number of latents (dictionary size)."""
    d_out: Optional[int] = None
    """Width of the reconstructed activations; None means ``d_in`` (an SAE, not a transcoder)."""
    k: Optional[int] = None
    """Active latents per token (``topk``; mean per token for ``batchtopk``)."""
    l1_coeff: float = 5.0
    """L1 penalty on decoder-norm-weighted latents (``relu``)."""
    l0_coeff: float = 1.0
    """L0 penalty (``jumprelu``), applied through straight-through pseudo-derivatives."""
    jumprelu_bandwidth: float = 0.05
    """Kernel width of the JumpReLU pseudo-derivatives (in normalised units)."""
    jumprelu_init_threshold: float = 0.001
    """Initial JumpReLU threshold."""
    normalize_decoder: bool = True
    """Keep decoder rows at unit norm during training (off for ``relu``, whose L1 is norm-weighted)."""
    act_scale: float = 1.0
    """Inputs are multiplied by this before encoding (fixed mean norm sqrt(d_in) at train time)."""
    out_scale: float = 1.0
    """Reconstructions are divided by this after decoding (= act_scale for SAEs)."""
    model: Optional[str] = None
    """Model spec the SAE was trained on (provenance)."""
    site: Optional[str] = None
    """Input site, e.g. ``blocks.6.hook_resid_post``."""
    out_site: Optional[str] = None
    """Reconstructed site for transcoders (e.g. ``blocks.6.hook_mlp_out``); None for SAEs."""
    schema_version: int = SCHEMA_VERSION
    """On-disk format version."""

    def __post_init__(self) -> None:
        from .arch import ARCHS

        if self.arch not in ARCHS:
            raise ConfigError(f"unknown SAE architecture {self.arch!r}; use one of {sorted(ARCHS)}")
        if self.d_in <= 0 or self.d_sae <= 0:
            raise ConfigError(f"d_in and d_sae must be positive, got {self.d_in}, {self.d_sae}")
        if self.arch in ("topk", "batchtopk") and not (self.k and 0 < self.k <= self.d_sae):
            raise ConfigError(f"{self.arch} needs 0 < k <= d_sae ({self.d_sae}); got k={self.k}")

    @property
    def d_output(self) -> int:
        return self.d_out if self.d_out is not None else self.d_in

    @property
    def is_transcoder(self) -> bool:
        return self.out_site is not None or (self.d_out is not None and self.d_out != self.d_in)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SAEConfig":
        if d.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            raise ConfigError(f"SAE config schema {d.get('schema_version')} is not {SCHEMA_VERSION}")
        return _from_dict(cls, d, "SAE config")

    def replace(self, **kw) -> "SAEConfig":
        return replace(self, **kw)


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Stored in checkpoints; a resume must use the same values."""

    batch_size: int = 4096
    """Rows per optimiser step (global, over all processes)."""
    n_tokens: int = 2_000_000
    """Token budget: steps = n_tokens // batch_size."""
    lr: float = 0.0
    """Adam learning rate; 0 picks 2e-4 / sqrt(d_sae / 16384) (the scaling law of Gao et al.)."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    decay_start: float = 0.8
    """Fraction of training after which the rate decays linearly to zero."""
    betas: tuple = (0.9, 0.999)
    """Adam betas."""
    aux_coeff: float = 1 / 32
    """AuxK loss coefficient (``topk`` / ``batchtopk``); 0 disables it."""
    aux_k: int = 0
    """Latents used by AuxK; 0 picks d_in // 2."""
    dead_after_tokens: int = 250_000
    """A latent that has not fired for this many tokens counts as dead (for AuxK and the bar)."""
    b_dec_init: str = "geometric_median"
    """Decoder bias init: ``geometric_median``, ``mean`` or ``zeros``."""
    normalize_activations: bool = True
    """Scale inputs to mean norm sqrt(d_in) (factor recorded in the SAE config)."""
    seed: int = 0
    """Seed for the init and the data order."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every N steps (0: only at the end)."""
    log_every: int = 10
    """Steps between progress / log updates."""

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.n_tokens < self.batch_size:
            raise ConfigError(f"need batch_size > 0 and n_tokens >= batch_size; got {self.batch_size}, {self.n_tokens}")
        if self.b_dec_init not in ("geometric_median", "mean", "zeros"):
            raise ConfigError(f"b_dec_init must be geometric_median, mean or zeros, not {self.b_dec_init!r}")

    @property
    def n_steps(self) -> int:
        return self.n_tokens // self.batch_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return _from_dict(cls, d, "train config")
