"""Latent sources: token windows in, latent activations ``[batch pos n_selected]`` out.

A :class:`LatentSource` hides where latents come from:

- :class:`NeuronSource` — the units of one model site (e.g. ``blocks.5.mlp.hook_post``),
  read with ``run_with_cache``; steering adds a one-hot vector at that site.
- :class:`SAESource` — an SAE from :func:`interpbench.sae.load` applied to its site's
  activations (``sae.encode``); steering adds the decoder row ``W_dec[f]`` at the site.
- :class:`SyntheticSource` — hand-written latents with known descriptions computed from
  token strings (ground truth for the pipeline); not steerable.
"""

from __future__ import annotations

import re
from typing import Callable, Optional, Protocol, Sequence, runtime_checkable

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..errors import ConfigError, InterpbenchError


@runtime_checkable
class LatentSource(Protocol):
    """Anything that maps token windows to latent activations."""

    name: str
    """Stable description written into every record (``neurons:smollm2-135m:blocks.5...``)."""
    model: object
    """The :class:`~interpbench.models.model.HookedModel` whose tokens/activations are used."""
    site: Optional[str]
    """Model site the latents live on (None for synthetic latents)."""
    n_latents: int
    """Number of latents (valid indices are ``0..n_latents-1``)."""

    def latent_acts(self, tokens: Int[Tensor, "batch pos"],
                    features: Sequence[int]) -> Float[Tensor, "batch pos n_sel"]: ...

    def steer_vector(self, feature: int) -> Optional[Float[Tensor, "d_site"]]:
        """Direction added at ``site`` to steer the latent, or None when not steerable."""
        ...


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted site has been read."""


def read_site(model, tokens, site: str) -> Tensor:
    """Activation at ``site``; the forward stops right after the site's module (later layers skipped).

    The stop hook is registered *inside* the trace, so it runs after the trace's own hook.
    """
    module = model.hf.get_submodule(model.site_def(site).module)

    def stop(*_):
        raise _Stop

    with model.trace(cache=[site]) as tr:
        handle = module.register_forward_hook(stop)
        try:
            model(tokens)
        except _Stop:
            pass
        finally:
            handle.remove()
    return tr.cache[site]


class NeuronSource:
    """Neurons (units of the last axis) of one model site."""

    def __init__(self, model, site: str):
        self.model, self.site = model, site
        d = model.site_def(site)  # raises SiteError naming close matches
        if d.axes[-1] in ("head", "k_pos"):
            raise ConfigError(f"site {site} has axes {d.axes}; neurons need a site whose last axis is units")
        self.n_latents = _site_width(model, site)
        self.name = f"neurons:{model.cfg.name}:{site}"

    @torch.no_grad()
    def latent_acts(self, tokens, features):
        x = read_site(self.model, tokens, self.site)  # [batch pos d_site]
        idx = torch.as_tensor(list(features), device=x.device)
        return x[..., idx].float()  # [batch pos n_sel]

    def steer_vector(self, feature: int):
        v = torch.zeros(self.n_latents, device=self.model.device, dtype=self.model.dtype)
        v[feature] = 1.0
        return v


class SAESource:
    """Features of an SAE trained on one site of a model."""

    def __init__(self, sae, model, site: str, name: str, steer_site: Optional[str] = None):
        self.sae, self.model, self.site, self.name = sae, model, site, name
        self.steer_site = steer_site or site  # transcoders write to their output site
        self.n_latents = int(sae.W_dec.shape[0])

    @torch.no_grad()
    def latent_acts(self, tokens, features):
        x = read_site(self.model, tokens, self.site)  # [batch pos d_in]
        z = self.sae.encode(x.reshape(-1, x.shape[-1]).to(self.sae.W_dec.dtype))  # [batch*pos d_sae]
        z = z.reshape(*x.shape[:-1], z.shape[-1])  # [batch pos d_sae]
        idx = torch.as_tensor(list(features), device=z.device)
        return z[..., idx].float()

    def steer_vector(self, feature: int):
        """``W_dec[f] / out_scale``: one unit of the latent in the model's raw units (see ``sae.decode``)."""
        cfg = self.sae.cfg
        scale = (cfg.get("out_scale") if isinstance(cfg, dict) else getattr(cfg, "out_scale", None)) or 1.0
        return (self.sae.W_dec[feature].detach() / scale).to(self.model.device, self.model.dtype)


def _strip(tok: str) -> str:
    return tok.replace("Ġ", " ").replace("▁", " ").strip()


# name -> (true description, rule on (token strings, position) -> bool)
SYNTHETIC_LATENTS: dict[str, tuple[str, Callable[[list[str], int], bool]]] = {
    "digits": ("digits and numbers", lambda t, i: bool(re.fullmatch(r"\d+", _strip(t[i])))),
    "capitalised": ("capitalised words starting with an uppercase letter",
                    lambda t, i: bool(re.fullmatch(r"[A-Z][a-z]+", _strip(t[i])))),
    "sentence_start": ("the first word of a new sentence, right after a period",
                       lambda t, i: i > 1 and _strip(t[i - 1]) in {".", "!", "?"} and bool(_strip(t[i]))),
    "of_the": ("the word 'the' right after the word 'of'",
               lambda t, i: i > 0 and _strip(t[i]) == "the" and _strip(t[i - 1]) == "of"),
    "punctuation": ("punctuation marks such as commas and periods",
                    lambda t, i: _strip(t[i]) in {",", ".", ";", ":", "!", "?"}),
    "dead": ("never fires", lambda t, i: False),
}
"""Ground-truth latents, in index order. ``dead`` tests the dead-latent path."""


class SyntheticSource:
    """Latents with known descriptions computed from token strings (BOS never fires)."""

    def __init__(self, model):
        self.model, self.site = model, None
        self.keys = list(SYNTHETIC_LATENTS)
        self.n_latents = len(self.keys)
        self.name = f"synthetic:{model.cfg.name}"
        self._strs: dict[int, str] = {}

    def description(self, feature: int) -> str:
        return SYNTHETIC_LATENTS[self.keys[feature]][0]

    def _str(self, i: int) -> str:
        if i not in self._strs:
            self._strs[i] = self.model.tokenizer.decode([i])
        return self._strs[i]

    def latent_acts(self, tokens, features):
        out = torch.zeros(*tokens.shape, len(features))  # [batch pos n_sel]
        for b in range(tokens.shape[0]):
            strs = [self._str(i) for i in tokens[b].tolist()]
            for j, f in enumerate(features):
                rule = SYNTHETIC_LATENTS[self.keys[f]][1]
                for i in range(1, len(strs)):
                    if rule(strs, i):
                        out[b, i, j] = 1.0 + 0.01 * (i % 5)  # graded, so quantiles differ
        return out

    def steer_vector(self, feature: int):
        return None


def _site_width(model, site: str) -> int:
    with torch.no_grad():
        _, cache = model.run_with_cache("Hello", names=[site])
    return int(cache[site].shape[-1])


def _sae_site(cfg) -> tuple[Optional[str], Optional[str]]:
    get = (lambda k: cfg.get(k)) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k, None))
    site = next((get(k) for k in ("site", "hook_name", "hookpoint", "hook_point", "site_name") if get(k)), None)
    model = next((get(k) for k in ("model", "model_name", "model_spec") if get(k)), None)
    return site, model


def build_source(spec: str, model_cache: Optional[dict] = None) -> LatentSource:
    """``sae:DIR`` | ``neurons:MODEL:SITE`` | ``synthetic:MODEL`` → a latent source."""
    from ..models.loading import load_model

    cache = model_cache if model_cache is not None else {}

    def get_model(name):
        if name not in cache:
            cache[name] = load_model(name, device="cpu" if name.startswith("/") else None)
        return cache[name]

    kind, _, rest = spec.partition(":")
    if kind == "neurons":
        model_name, _, site = rest.rpartition(":")
        if not model_name or not site:
            raise ConfigError(f"neurons source {rest!r} must be MODEL:SITE")
        return NeuronSource(get_model(model_name), site)
    if kind == "synthetic":
        return SyntheticSource(get_model(rest))
    if kind == "sae":
        try:
            from .. import sae as sae_mod
        except ImportError:
            raise InterpbenchError("interpbench.sae is not available in this install; "
                                   "label neurons with --neurons MODEL:SITE instead") from None
        sae = sae_mod.load(rest)
        site, model_name = _sae_site(sae.cfg)
        if not site or not model_name:
            raise ConfigError(f"the SAE config under {rest} names no site/model; cannot find its activations")
        out_site = sae.cfg.get("out_site") if isinstance(sae.cfg, dict) else getattr(sae.cfg, "out_site", None)
        return SAESource(sae, get_model(model_name), site, f"sae:{rest}", out_site)
    raise ConfigError(f"unknown source {spec!r}")
