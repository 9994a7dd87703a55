"""The model object: a torch module, its tokenizer, its config and its site map.

It does four things and delegates the rest: tokenise (``to_tokens``), run (``__call__``),
read (``run_with_cache``) and intervene (``run_with_interventions`` / ``trace``). The
algorithms live in their own modules and take a ``HookedModel`` as an argument.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from ..errors import InterpbenchError, ShapeError, SiteError
from ..sites import Site, unknown_site_message
from .sitemap import SiteDef

TokensLike = Union[str, Sequence[str], Tensor]


@dataclass(frozen=True)
class ModelConfig:
    """Shape facts about a loaded model (TransformerLens field names)."""

    name: str
    """Spec the model was loaded from (bundled name, path, hub id or class name)."""
    arch: str
    """Architecture name, e.g. ``LlamaForCausalLM``."""
    n_layers: int
    """Number of transformer blocks."""
    n_heads: int
    """Query heads per attention layer."""
    n_kv_heads: int
    """Key/value heads per layer (< n_heads under grouped-query attention)."""
    d_model: int
    """Residual stream width."""
    d_head: int
    """Per-head width."""
    d_mlp: int
    """MLP hidden width."""
    d_vocab: int
    """Vocabulary size."""
    n_ctx: int
    """Maximum context length."""
    causal: bool = True
    """True for decoder-only LMs (logits), False for encoders (hidden states)."""

    def to_dict(self) -> dict:
        return asdict(self)


class HookedModel:
    """A model you can read and write at named sites. Build it with :func:`interpbench.load_model`."""

    def __init__(self, module: nn.Module, tokenizer: Any, cfg: ModelConfig, site_defs: Sequence[SiteDef],
                 forward: Optional[Callable[[nn.Module, Tensor, Optional[Tensor]], Tensor]] = None):
        self.hf = module
        self.tokenizer = tokenizer
        self.cfg = cfg
        self._defs = {d.name: d for d in site_defs}
        if len(self._defs) != len(site_defs):
            raise InterpbenchError("site map has duplicate names")
        self._forward = forward

    # -- facts ------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        p = next(self.hf.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        p = next(self.hf.parameters(), None)
        return p.dtype if p is not None else torch.float32

    @property
    def site_names(self) -> list[str]:
        """All site names in forward order."""
        return list(self._defs)

    def site_def(self, name: str) -> SiteDef:
        try:
            return self._defs[name]
        except KeyError:
            raise SiteError(unknown_site_message(name, self.site_names)) from None

    def to(self, device=None, dtype=None) -> "HookedModel":
        from .devices import resolve_device, resolve_dtype

        self.hf.to(device=resolve_device(device) if device is not None else None,
                   dtype=resolve_dtype(dtype) if dtype is not None else None)
        return self

    # -- tokens -----------------------------------------------------------------------
    def to_tokens(self, text: TokensLike, prepend_bos: bool = True,
                  padding_side: Optional[str] = None) -> Int[Tensor, "batch pos"]:
        """Token ids ``[batch pos]`` on the model's device.

        ``prepend_bos`` is explicit: True puts the tokenizer's BOS (for encoders: the
        tokenizer's own special tokens) in front. Prompts of different token lengths need
        ``padding_side='left'|'right'``; otherwise that is an error rather than silent padding.
        """
        if isinstance(text, Tensor):
            return text.to(self.device)[None] if text.ndim == 1 else text.to(self.device)
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise InterpbenchError("to_tokens got an empty list of prompts")
        tok = self.tokenizer
        if not self.cfg.causal:
            ids = [tok(t, add_special_tokens=prepend_bos)["input_ids"] for t in texts]
        else:
            ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
            if prepend_bos:
                if tok.bos_token_id is None:
                    raise InterpbenchError(f"{self.cfg.name}'s tokenizer has no BOS token; pass prepend_bos=False")
                ids = [[tok.bos_token_id] + x for x in ids]
        lengths = {len(x) for x in ids}
        if len(lengths) > 1:
            if padding_side not in ("left", "right"):
                raise ShapeError(f"prompts tokenise to different lengths {sorted(lengths)}; make them equal "
                                 f"or pass padding_side='left'|'right' (and an attention mask)")
            pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
            n = max(lengths)
            ids = [([pad] * (n - len(x)) + x) if padding_side == "left" else (x + [pad] * (n - len(x))) for x in ids]
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def to_str_tokens(self, tokens: TokensLike, prepend_bos: bool = True) -> list[str]:
        """Token strings of one prompt (a 1-D id tensor, a [1 pos] tensor or a string)."""
        ids = self.to_tokens(tokens, prepend_bos=prepend_bos)
        if ids.shape[0] != 1:
            raise ShapeError("to_str_tokens takes one prompt; index the batch first")
        return [self.tokenizer.decode([i]) for i in ids[0].tolist()]

    def to_string(self, tokens: Tensor) -> Union[str, list[str]]:
        if tokens.ndim == 1:
            return self.tokenizer.decode(tokens.tolist())
        return [self.tokenizer.decode(t.tolist()) for t in tokens]

    # -- running ----------------------------------------------------------------------
    def __call__(self, tokens: TokensLike, attention_mask: Optional[Tensor] = None) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits ``[batch pos d_vocab]`` (encoders: last hidden states ``[batch pos d_model]``)."""
        ids = self.to_tokens(tokens)
        if self._forward is not None:
            return self._forward(self.hf, ids, attention_mask)
        kwargs = {"input_ids": ids}
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask
        if self.cfg.causal:
            kwargs["use_cache"] = False
            return self.hf(**kwargs).logits
        return self.hf(**kwargs).last_hidden_state

    def trace(self, *, cache: Optional[Iterable[Union[str, Site]]] = None,
              interventions: Optional[dict] = None, detach: bool = True):
        """Context manager with hooks installed; see :class:`interpbench.tracing.Trace`."""
        from ..tracing import Trace

        return Trace(self, cache=cache, interventions=interventions, detach=detach)

    def run_with_cache(self, tokens: TokensLike, names: Union[None, str, Iterable[Union[str, Site]]] = None,
                       *, attention_mask: Optional[Tensor] = None, detach: bool = True,
                       interventions: Optional[dict] = None) -> tuple[Tensor, dict[str, Tensor]]:
        """``(logits, cache)`` with ``cache[name]`` the activation at each requested site.

        ``names``: site names, fnmatch patterns (``'blocks.*.hook_resid_post'``) or None for
        every site (attention patterns included, which runs attention in the eager kernel).
        """
        if names is None:
            names = self.site_names
        elif isinstance(names, (str, Site)):
            names = [names]
        with self.trace(cache=names, interventions=interventions, detach=detach) as tr:
            logits = self(tokens, attention_mask=attention_mask)
        return logits, tr.cache

    def run_with_interventions(self, tokens: TokensLike, interventions: dict,
                               attention_mask: Optional[Tensor] = None) -> Tensor:
        """Logits with the given ``{site: Intervention | [Intervention, ...]}`` applied."""
        with self.trace(interventions=interventions):
            return self(tokens, attention_mask=attention_mask)

    def site_shapes(self, tokens: TokensLike = "Hello world") -> dict[str, tuple[int, ...]]:
        """Shape of every site (patterns included) for one forward on ``tokens``."""
        with torch.no_grad():
            _, cache = self.run_with_cache(tokens, names=self.site_names)
        return {n: tuple(cache[n].shape) for n in self.site_names}

    @torch.no_grad()
    def generate(self, tokens: TokensLike, max_new_tokens: int = 20, interventions: Optional[dict] = None) -> Tensor:
        """Greedy continuation ``[batch pos+new]``; with interventions, runs through nnsight."""
        ids = self.to_tokens(tokens)
        if interventions:
            from ..engines.nnsight_engine import generate_with_interventions

            return generate_with_interventions(self, ids, interventions, max_new_tokens)
        if not self.cfg.causal:
            raise InterpbenchError(f"{self.cfg.name} is an encoder; it cannot generate")
        mask = torch.ones_like(ids)
        return self.hf.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)

    def __repr__(self) -> str:
        c = self.cfg
        return (f"HookedModel({c.name!r}, arch={c.arch}, layers={c.n_layers}, heads={c.n_heads}/{c.n_kv_heads}, "
                f"d_model={c.d_model}, device={self.device}, dtype={self.dtype})")
