"""Causal mediation analysis (Vig et al. 2020, "Investigating Gender Bias in Language Models
Using Causal Mediation Analysis"): total, natural direct and natural indirect effects of an
intervention on the input, through any mediator inside the model.

Notation, per prompt ``u``: ``null`` is the unchanged prompt ("The nurse said that"),
``set-gender`` the intervened prompt ("The man said that"); ``y_x(u)`` is the response on
prompt ``x``, by default ``y = p(anti-stereotypical) / p(stereotypical)`` at the last
position (``= exp(logit[answer] - logit[wrong])``), or any ``metric(logits) -> [batch]``;
``y_{x, z_x'}(u)`` is the response on prompt ``x`` with the mediator ``z`` set to the value
it takes on prompt ``x'``. With ``contrast="ratio"`` (Vig et al.)::

    TE(u)  = y_set-gender(u) / y_null(u) - 1
    NIE(u) = y_{null, z_set-gender}(u) / y_null(u) - 1     # only the mediator sees set-gender
    NDE(u) = y_{set-gender, z_null}(u) / y_null(u) - 1     # everything but the mediator sees it

and with ``contrast="difference"`` (for additive metrics such as a logit difference) the
same with ``a / b - 1`` replaced by ``a - b``. Effects are means over prompts with
percentile-bootstrap CIs over prompts (:func:`interpbench.metrics.mean_ci_tensor`).

A mediator is a :class:`Mediator`: a site with an optional index — a neuron
(``blocks.3.mlp.hook_post[neuron=12]``), a head (``blocks.3.attn.hook_z[head=2]``), a layer
output (``blocks.3.hook_attn_out`` / ``hook_mlp_out`` / ``hook_resid_post``), optionally at
one position (``[pos=-1]``) — and optionally a ``basis`` ``[k, d]`` of a subspace of the
site's last axis; then the mediator's value is the projection onto that subspace and it is
set by ``ProjectOut(basis)`` followed by ``Add`` of the other run's projection.

Algorithm (:func:`mediation`):

1. Run the null and the set-gender prompts once, caching every mediator site:
   ``y_null``, ``y_set``, TE.
2. NIE: run the null prompts with each mediator set to its set-gender value; NDE: run the
   set-gender prompts with each mediator set to its null value. Many mediators share one
   forward: the batch is mediators × prompts and each mediator's intervention acts only on
   its own rows (``max_rows`` bounds the batch).
3. Per-prompt effects ``[n_mediators, batch]`` → means and bootstrap CIs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from .errors import ConfigError, InterpbenchError
from .interventions import Add, Patch, ProjectOut, Replace
from .sites import Site

SCHEMA_VERSION = 1
Metric = Callable[[Tensor], Tensor]


@dataclass(frozen=True, eq=False)
class Mediator:
    """A site (with optional index) and optional subspace whose value mediates an effect."""

    site: str
    """Site string, e.g. ``blocks.3.attn.hook_z[head=2]`` or ``blocks.3.mlp.hook_post[neuron=12]``."""
    basis: Optional[Tensor] = None
    """Rows ``[k, d]`` spanning a subspace of the site's last axis; None mediates the whole site region."""
    name: str = ""
    """Label in results (defaults to the site string, plus ``:subspace(k)``)."""

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return self.site + (f":subspace({self.basis.reshape(-1, self.basis.shape[-1]).shape[0]})"
                            if self.basis is not None else "")

    def interventions(self, other: Tensor) -> list:
        """Interventions setting this mediator to its value in ``other`` (the other run's whole site tensor)."""
        if self.basis is None:
            return [Patch(other)]
        q = _orthonormal(self.basis.to(other.device, other.dtype))
        return [ProjectOut(self.basis.to(other.device, other.dtype)), Add((other @ q.T) @ q)]


def _orthonormal(basis: Tensor) -> Tensor:
    b = basis.reshape(-1, basis.shape[-1])  # [k d]
    q, _ = torch.linalg.qr(b.T.float())  # [d k]
    return q.T.to(basis.dtype)  # [k d]


@dataclass(frozen=True)
class Effect:
    """A mean effect over prompts with its bootstrap confidence interval."""

    mean: float
    """Mean over prompts."""
    lo: float
    """Lower CI bound."""
    hi: float
    """Upper CI bound."""

    def to_dict(self) -> dict:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi}


@dataclass(frozen=True)
class MediationResult:
    """Total, natural direct and natural indirect effects for a set of mediators."""

    mediators: tuple[str, ...]
    """Mediator labels, in the order of the effect arrays."""
    te: Effect
    """Total effect (same for every mediator)."""
    nie: tuple[Effect, ...]
    """Natural indirect effect per mediator."""
    nde: tuple[Effect, ...]
    """Natural direct effect per mediator."""
    contrast: str
    """``ratio`` (Vig et al.: ``a/b - 1``) or ``difference`` (``a - b``)."""
    response: str
    """What ``y`` is, e.g. ``p(answer)/p(wrong)`` or ``custom``."""
    n_prompts: int
    """Number of prompts averaged."""
    per_prompt: dict = field(default_factory=dict)
    """``te`` [batch], ``nie`` / ``nde`` [n_mediators, batch] tensors (not written by to_dict)."""
    meta: dict = field(default_factory=dict)
    """Provenance: method, paper, CI level, bootstrap samples, data description."""
    schema_version: int = SCHEMA_VERSION
    """On-disk schema version."""

    @property
    def nie_values(self) -> Tensor:
        return torch.tensor([e.mean for e in self.nie])

    @property
    def nde_values(self) -> Tensor:
        return torch.tensor([e.mean for e in self.nde])

    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "method": "causal_mediation", "mediators": list(self.mediators),
                "te": self.te.to_dict(), "nie": [e.to_dict() for e in self.nie],
                "nde": [e.to_dict() for e in self.nde], "contrast": self.contrast, "response": self.response,
                "n_prompts": self.n_prompts, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "MediationResult":
        if d.get("schema_version") != SCHEMA_VERSION:
            raise InterpbenchError(f"mediation record has schema_version {d.get('schema_version')}, this "
                                   f"interpbench reads {SCHEMA_VERSION}; rerun the recipe")
        return cls(tuple(d["mediators"]), Effect(**d["te"]), tuple(Effect(**e) for e in d["nie"]),
                   tuple(Effect(**e) for e in d["nde"]), d["contrast"], d["response"], d["n_prompts"], {},
                   d.get("meta", {}))


def prob_ratio(answer: Tensor, wrong: Tensor, pos: int = -1) -> Metric:
    """Vig et al.'s response ``y = p(answer)/p(wrong)`` at ``pos``, per prompt."""

    def y(logits: Tensor) -> Tensor:
        x = logits[:, pos].float()  # [batch d_vocab]
        a, w = answer.to(x.device), wrong.to(x.device)
        rows = torch.arange(x.shape[0], device=x.device) % a.shape[0]  # rows may be mediators × prompts
        return (x[rows, a[rows]] - x[rows, w[rows]]).exp()

    return y


def _contrast(a: Tensor, b: Tensor, contrast: str) -> Tensor:
    return a / b - 1 if contrast == "ratio" else a - b


def _as_mediators(mediators) -> list[Mediator]:
    out = [m if isinstance(m, Mediator) else Mediator(str(m)) for m in mediators]
    if not out:
        raise InterpbenchError("mediation needs at least one mediator (e.g. 'blocks.0.attn.hook_z[head=0]')")
    return out


def _rows_y(y: Metric, logits: Tensor, n_med: int, batch: int) -> Tensor:
    blocks = logits.unflatten(0, (n_med, batch))  # [M*B pos vocab] -> [M B pos vocab]
    return torch.stack([y(blocks[i]).float().reshape(batch) for i in range(n_med)])  # [M B]


def _masked(iv_list: list, rows: Tensor) -> Replace:
    """Apply ``iv_list`` only on the rows where ``rows`` [batch] is true."""
    mask = rows[:, None, None, None]

    def fn(act: Tensor) -> Tensor:
        new = act
        for iv in iv_list:
            new = iv(new)
        return torch.where(mask.reshape(-1, *([1] * (act.ndim - 1))), new, act)

    return Replace(fn, name="mediator")


@torch.no_grad()
def _set_mediators(model, base: Tensor, other_cache: dict, meds: list[Mediator], y: Metric,
                   max_rows: int) -> Tensor:
    """y of ``base`` prompts with each mediator set to its value in ``other_cache``: [M, batch]."""
    B = base.shape[0]
    out = []
    step = max(1, max_rows // B)
    for start in range(0, len(meds), step):
        part = meds[start:start + step]
        M = len(part)
        ivs: dict = {}
        for i, med in enumerate(part):
            name = Site.parse(med.site).name
            src = other_cache[name].repeat(M, *([1] * (other_cache[name].ndim - 1)))  # [M*B ...]
            rows = torch.zeros(M * B, dtype=torch.bool, device=base.device)
            rows[i * B:(i + 1) * B] = True
            ivs.setdefault(med.site, []).append(_masked(med.interventions(src), rows))
        logits = model.run_with_interventions(base.repeat(M, 1), ivs)
        out.append(_rows_y(y, logits, M, B))
    return torch.cat(out)  # [M B]


@torch.no_grad()
def mediation(model, null_tokens: Int[Tensor, "batch pos"], set_tokens: Int[Tensor, "batch pos"],
              mediators: Sequence, *, y: Optional[Metric] = None, answer: Optional[Tensor] = None,
              wrong: Optional[Tensor] = None, contrast: str = "ratio", n_boot: int = 1000, seed: int = 0,
              level: float = 0.95, max_rows: int = 128) -> MediationResult:
    """TE, NIE and NDE (module docstring) for each mediator, with bootstrap CIs over prompts.

    ``y``: response ``metric(logits) -> [batch]``; default :func:`prob_ratio` of
    ``answer`` / ``wrong`` (the anti-stereotypical / stereotypical tokens).
    """
    from .metrics import mean_ci_tensor

    if contrast not in ("ratio", "difference"):
        raise ConfigError(f"contrast must be 'ratio' or 'difference', got {contrast!r}")
    null_tokens, set_tokens = model.to_tokens(null_tokens), model.to_tokens(set_tokens)
    if null_tokens.shape != set_tokens.shape:
        raise InterpbenchError(f"null {tuple(null_tokens.shape)} and set-gender {tuple(set_tokens.shape)} token "
                               f"shapes differ; every pair must tokenise to the same length")
    if y is None:
        if answer is None or wrong is None:
            raise InterpbenchError("pass y=metric or answer= and wrong= token ids for the probability ratio")
        y, response = prob_ratio(answer, wrong), "p(answer)/p(wrong)"
    else:
        response = getattr(y, "__name__", "custom")
    meds = _as_mediators(mediators)
    names = sorted({Site.parse(m.site).name for m in meds})
    logits_null, c_null = model.run_with_cache(null_tokens, names)
    logits_set, c_set = model.run_with_cache(set_tokens, names)
    y_null, y_set = y(logits_null).float(), y(logits_set).float()  # [B]
    te = _contrast(y_set, y_null, contrast)
    nie = _contrast(_set_mediators(model, null_tokens, c_set, meds, y, max_rows), y_null, contrast)  # [M B]
    nde = _contrast(_set_mediators(model, set_tokens, c_null, meds, y, max_rows), y_null, contrast)
    B = null_tokens.shape[0]
    stats = mean_ci_tensor(torch.cat([te[None], nie, nde]).cpu(), n_boot=n_boot, seed=seed, level=level)
    eff = [Effect(float(a), float(b), float(c)) for a, b, c in zip(*(s.tolist() for s in stats))]
    M = len(meds)
    return MediationResult(tuple(m.label for m in meds), eff[0], tuple(eff[1:1 + M]), tuple(eff[1 + M:]),
                           contrast, response, B, {"te": te, "nie": nie, "nde": nde},
                           {"method": "causal_mediation", "paper": "Vig et al. 2020", "ci": "percentile bootstrap "
                            "over prompts", "level": level, "n_boot": n_boot, "seed": seed,
                            "model": model.cfg.name})


def head_mediators(model, layers: Optional[Sequence[int]] = None) -> list[Mediator]:
    """One mediator per attention head (``blocks.L.attn.hook_z[head=H]``), layer-major."""
    layers = range(model.cfg.n_layers) if layers is None else layers
    return [Mediator(f"blocks.{layer}.attn.hook_z[head={h}]") for layer in layers for h in range(model.cfg.n_heads)]


def neuron_mediators(model, layer: int, neurons: Sequence[int], site: str = "mlp.hook_post") -> list[Mediator]:
    """One mediator per neuron of ``blocks.{layer}.{site}``."""
    return [Mediator(f"blocks.{layer}.{site}[neuron={int(i)}]") for i in neurons]


def layer_mediators(model, kind: str = "hook_mlp_out") -> list[Mediator]:
    """One mediator per layer output (``hook_attn_out``, ``hook_mlp_out`` or ``hook_resid_post``)."""
    return [Mediator(f"blocks.{layer}.{kind}") for layer in range(model.cfg.n_layers)]


__all__ = ["Mediator", "Effect", "MediationResult", "mediation", "prob_ratio", "head_mediators",
           "neuron_mediators", "layer_mediators"]
