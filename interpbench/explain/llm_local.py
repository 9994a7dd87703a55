"""The offline default LLM: bundled SmolLM2-135M-Instruct through transformers.

1. Load its own copy of the weights (``load_model("smollm2-135m").hf``), so tracing hooks
   on the model under study never touch the judge; calls are serialised by a lock.
2. Render prompts with the tokenizer's chat template (``add_generation_prompt=True``).
3. ``complete``: greedy decoding (sampling with a seeded generator when temperature > 0); an
   optional ``prefix`` pre-fills the assistant's answer (the explainer uses ``Explanation:``).
4. ``choice_probs``: left-pad the rendered prompts, one forward (the unembedding only at the
   last position), softmax of the last position's logits; a choice's probability is the sum
   over the first tokens of its spellings, renormalised over the choices.
5. ``position_probs``: one forward over ``prompt + continuation`` ids (the unembedding only
   at the requested positions); at each requested position the next-token distribution
   restricted to candidate ids, renormalised (the simulation scorer's "all at once" read-out).
"""

from __future__ import annotations

import threading
from typing import Optional, Sequence

import torch

from .llm_base import Completion, Usage

_MODEL_LOCK = threading.Lock()
_SHARED: dict = {}


def _shared_model(spec: str):
    with _MODEL_LOCK:
        if spec not in _SHARED:
            from ..models.loading import load_model

            _SHARED[spec] = load_model(spec, device="cpu")
        return _SHARED[spec]


class LocalClient:
    """SmolLM2-135M-Instruct (or another local chat model spec) run in-process."""

    def __init__(self, spec: str = "smollm2-135m"):
        self.spec = spec
        self.name = f"local:{spec}"
        self.usage = Usage()
        self._lock = threading.Lock()
        m = _shared_model(spec)
        self.hf, self.tok = m.hf, m.tokenizer

    def render(self, messages, prefix: str = "") -> list[int]:
        text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tok(text + prefix, add_special_tokens=False)["input_ids"]

    @torch.no_grad()
    def complete(self, messages, max_tokens: int = 30, temperature: float = 0.0, seed: int = 0,
                 prefix: str = "") -> Completion:
        """Chat completion; ``prefix`` pre-fills the start of the assistant's answer (returned with it)."""
        ids = torch.tensor([self.render(messages, prefix)])
        kw = dict(do_sample=False)
        if temperature > 0:
            kw = dict(do_sample=True, temperature=temperature, top_p=0.95)
        with self._lock:
            if temperature > 0:
                torch.manual_seed(seed)
            out = self.hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                   pad_token_id=self.tok.pad_token_id or self.tok.eos_token_id, **kw)
        new = out[0, ids.shape[1]:]
        text = prefix + self.tok.decode(new, skip_special_tokens=True)
        self.usage.add(calls=1, prompt_tokens=ids.shape[1], completion_tokens=len(new))
        return Completion(text, ids.shape[1], len(new))

    def _first_ids(self, spellings: Sequence[str]) -> list[int]:
        ids = {self.tok(s, add_special_tokens=False)["input_ids"][0] for s in spellings}
        return sorted(ids)

    @torch.no_grad()
    def choice_probs(self, prompts, choices) -> list[Optional[dict[str, float]]]:
        rendered = [self.render(p) for p in prompts]
        n = max(len(r) for r in rendered)
        pad = self.tok.pad_token_id or 0
        ids = torch.tensor([[pad] * (n - len(r)) + r for r in rendered])  # [batch pos], left-padded
        mask = torch.tensor([[0] * (n - len(r)) + [1] * len(r) for r in rendered])
        with self._lock:
            logits = self.hf(input_ids=ids, attention_mask=mask, use_cache=False,
                             logits_to_keep=1).logits[:, -1]  # [batch vocab]; the unembedding runs on one position
        probs = logits.float().softmax(-1)
        mass = torch.stack([probs[:, self._first_ids(sp)].sum(-1) for sp in choices.values()], -1)  # [batch choice]
        mass = mass / mass.sum(-1, keepdim=True)
        self.usage.add(calls=len(prompts), prompt_tokens=sum(len(r) for r in rendered))
        names = list(choices)
        return [dict(zip(names, row)) for row in mass.tolist()]

    @torch.no_grad()
    def position_probs(self, ids: list[int], positions: Sequence[int], candidates: Sequence[int]) -> torch.Tensor:
        """``[len(positions) len(candidates)]`` next-token probabilities at ``positions``."""
        with self._lock:
            keep = torch.tensor(list(positions), dtype=torch.long)
            logits = self.hf(input_ids=torch.tensor([ids]), use_cache=False,
                             logits_to_keep=keep).logits[0]  # [n_pos vocab]: unembedding only where read
        sel = logits[:, list(candidates)].float()  # [n_pos n_cand]
        self.usage.add(calls=1, prompt_tokens=len(ids))
        return sel.softmax(-1)
