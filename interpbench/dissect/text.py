"""Text dissection: token rows, token-level concepts, unit views of language-model sites.

1. Tokenise each text without special tokens, cut it to ``max_len - 1`` tokens and put
   BOS in front (causal models); batch with right padding and an attention mask.
2. Rows are the text tokens only (BOS and padding excluded), in batch-major order; their
   concept masks come from :mod:`.text_concepts` (built-in predicates or a JSONL file).
3. Units of a site: the last axis of ``[batch pos units]`` sites (MLP neurons, residual
   dimensions); the L2 norm of each head's vector for ``[batch pos head d_head]`` sites;
   ``encode(x)`` latents when an SAE encoder is given for the site. Sites with no token
   axis (attention patterns) are rejected.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from ..errors import InterpbenchError
from ..sites import expand
from .engine import Batch
from .text_concepts import BUILTIN_CONCEPTS, Annotated, annotation_masks, builtin_masks, read_annotations

DEFAULT_TEXTS = (
    "On Monday, 12 March 2024, the red train left London at 9:45 and arrived in Paris three hours later.",
    "She said: \"The blue house (built in 1887) is the oldest one on our street.\"",
    "In January and February the temperature fell to -5 degrees; by July it reached 31.",
    "They counted one, two, three, four, five green apples and 17 yellow pears.",
    "The committee met on Friday; its report, published in October, ran to 240 pages.",
    "He quickly opened the old wooden door and walked slowly into the dark room.",
    "NASA launched the probe in 1977, and it is still sending data from beyond the planets.",
    "We will meet again on Sunday at 10 o'clock (or Saturday, if it rains).",
)


def resolve_sites(model, pattern: Union[str, Sequence[str]]) -> list[str]:
    """Site names matching the patterns, each checked to have a token axis."""
    sites = [str(s) for s in expand(pattern if isinstance(pattern, (list, tuple)) else [pattern], model.site_names)]
    for s in sites:
        axes = model.site_def(s).axes
        if "pos" not in axes:
            raise InterpbenchError(f"site {s} has axes {axes} without a token axis 'pos'; dissect sites shaped "
                                   f"[batch pos units] or [batch pos head d_head]")
    return sites


def units_of(axes: Sequence[str], act: Tensor) -> Tensor:
    """``[batch pos units]`` view of a site tensor (step 3)."""
    if tuple(axes[:2]) != ("batch", "pos"):
        raise InterpbenchError(f"a site with axes {tuple(axes)} has no [batch pos ...] token layout to dissect")
    if len(axes) == 3:
        return act
    if len(axes) == 4 and axes[2] == "head":
        return act.float().norm(dim=-1)  # [batch pos head d_head] -> [batch pos head]
    raise InterpbenchError(f"cannot take units of a site with axes {tuple(axes)}")


class TextData:
    """Tokenised texts, their concept masks and batches (steps 1-2)."""

    def __init__(self, model, texts: Optional[Sequence[str]] = None, concepts: str = "builtin",
                 max_len: int = 64, batch_size: int = 8, n_texts: Optional[int] = None):
        tok = model.tokenizer
        if concepts == "builtin":
            if texts is None:
                texts = _default_corpus(n_texts or 64)
            recs = [Annotated(t, {}) for t in texts]
            self.concepts = list(BUILTIN_CONCEPTS)
        else:
            recs, self.concepts = read_annotations(concepts)
        if not recs:
            raise InterpbenchError("no texts to dissect; pass texts or a corpus")
        bos = [tok.bos_token_id] if (model.cfg.causal and tok.bos_token_id is not None) else []
        self.offset = len(bos)
        self.ids: list[list[int]] = []
        self.tokens: list[list[str]] = []
        masks = []
        for n, rec in enumerate(recs):
            ids = tok(rec.text, add_special_tokens=False)["input_ids"][: max_len - len(bos)]
            if not ids:
                continue
            strs = [tok.decode([i]) for i in ids]
            if concepts == "builtin":
                m = builtin_masks(strs)
            else:
                m = annotation_masks(rec, strs, self.concepts, where=f"{concepts} text {n + 1}: ")
            self.ids.append(bos + ids)
            self.tokens.append(strs)
            masks.append(m)
        self.masks = masks
        self.batch_size = batch_size
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        self.device = model.device
        present = [bool(any(m[:, j].any() for m in masks)) for j in range(len(self.concepts))]
        self.dropped = [c for c, p in zip(self.concepts, present) if not p]
        if self.dropped and concepts != "builtin":
            raise InterpbenchError(f"concept {self.dropped[0]!r} is empty on these texts; drop it or add texts that have it")
        if self.dropped:  # built-in concepts absent from this corpus are dropped and listed in the result
            keep = torch.tensor(present)
            self.concepts = [c for c, p in zip(self.concepts, present) if p]
            self.masks = [m[:, keep] for m in masks]

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self):
        for start in range(0, len(self.ids), self.batch_size):
            ids = self.ids[start:start + self.batch_size]
            n = max(len(x) for x in ids)
            toks = torch.tensor([x + [self.pad] * (n - len(x)) for x in ids], device=self.device)
            attn = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in ids], device=self.device)
            valid = attn.bool().clone()
            valid[:, : self.offset] = False  # BOS rows are not dissected
            masks = torch.cat(self.masks[start:start + self.batch_size])
            ex = torch.cat([torch.full((len(x) - self.offset,), start + k) for k, x in enumerate(ids)])
            yield Batch((toks, attn, valid), masks, ex)


def _default_corpus(n: int) -> list[str]:
    try:
        from ..corpus import load_corpus

        return list(load_corpus("default")[:n])
    except Exception:  # noqa: BLE001 - gensim missing: fall back to the built-in sentences, said in the result
        return list(DEFAULT_TEXTS)


def text_acts_fn(model, sites: Sequence[str], encode: Optional[dict[str, Callable[[Tensor], Tensor]]] = None):
    """``acts_fn`` for :func:`~.engine.dissect`: ``{site: [valid tokens units]}`` (step 3)."""
    encode = encode or {}

    @torch.no_grad()
    def fn(inputs) -> dict[str, Tensor]:
        toks, attn, valid = inputs
        _, cache = model.run_with_cache(toks, list(sites), attention_mask=attn)
        out = {}
        for s in sites:
            act = cache[s]
            if s in encode:
                act = encode[s](act.float())  # [batch pos d] -> [batch pos latents]
                u = act
            else:
                u = units_of(model.site_def(s).axes, act)
            out[s] = u[valid].float()  # [batch pos units] -> [valid units]
        return out

    return fn
