"""Explainers: example sets in, one short natural-language explanation out.

- :class:`LLMExplainer` (``llm:<client>``). The prompt (see ``SYSTEM``/``build_prompt``) shows
  each explanation example cut to ``context`` tokens around its peak, with every token whose
  activation exceeds 30% of the latent's max written ``<<token>>(a)``, ``a`` the activation
  scaled to 0-10, and asks for one short phrase after ``Explanation:``. The answer is parsed
  by :func:`parse_explanation` (local models get the answer pre-filled with ``Explanation:``);
  an answer that does not parse is retried (greedy first, then
  sampling with a seeded temperature 0.7) and after ``attempts`` tries the stage fails with
  the raw answer in the error — never replaced by anything else.
- :class:`TopTokensExplainer` (``baseline:top-tokens``, not an LLM): the three token strings
  with the largest summed activation over the explanation examples.
- :class:`LogitLensExplainer` (``baseline:logit-lens``, not an LLM): the latent's residual
  direction through the final norm's scale and the unembedding; the five top tokens,
  written "promotes tokens ...".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Optional

import torch

from ..errors import InterpbenchError


class ExplainError(InterpbenchError):
    """No usable explanation (unparseable LLM answer, unsupported source)."""


@dataclass(frozen=True)
class Explanation:
    """One explanation of one latent, with how it was made."""

    text: str
    """The explanation."""
    explainer: str
    """``llm:<model>``, ``baseline:top-tokens`` or ``baseline:logit-lens``."""
    kind: str
    """``llm`` or ``baseline`` (a non-LLM heuristic)."""
    prompt_tokens: int = 0
    """LLM prompt tokens spent (all attempts)."""
    completion_tokens: int = 0
    """LLM completion tokens spent (all attempts)."""
    parse_failures: int = 0
    """Unparseable LLM answers before this one."""
    n_examples: int = 0
    """Explanation examples shown."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Explanation":
        return cls(**d)


SYSTEM = ("You study one neuron of a language model. You see text excerpts where it activates; "
          "activating tokens are marked <<token>>(strength 0-10). Describe in a few words what the neuron "
          "responds to.")


def show_record(r, max_act: float, context: int = 12, frac: float = 0.3) -> str:
    """One example as text with ``<<token>>(a)`` marks around its peak (``context`` tokens)."""
    peak = max(range(len(r.acts)), key=lambda i: r.acts[i])
    lo = max(0, peak - context + 3)
    hi = min(len(r.tokens), lo + context)
    out = []
    for i in range(lo, hi):
        a = r.acts[i]
        if a > frac * max_act:
            out.append(f"<<{r.tokens[i]}>>({round(10 * a / max_act)})")
        else:
            out.append(r.tokens[i])
    return "".join(out).replace("\n", " ").strip()


def build_prompt(examples, context: int = 12) -> list:
    body = "\n".join(f"{i + 1}. {show_record(r, examples.max_act, context)}" for i, r in enumerate(examples.explain))
    user = (f"Excerpts:\n{body}\n\nWhat do the marked tokens have in common? "
            f"Reply with one short phrase after 'Explanation:'.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


_LEAD = re.compile(r"^(the\s+)?(neuron|feature|marked tokens?)\s+(is\s+|are\s+|all\s+)?"
                   r"(detects?|responds? to|activates? on|fires? on|represents?|about|have in common|"
                   r"have|has|are|is)\s*:?\s*", re.I)


_ECHO = re.compile(r"in common|\bexplain|short phrase|marked tokens?|excerpts?", re.I)


def _unquote(t: str) -> str:
    while len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1].strip()
    return t


def parse_explanation(text: str) -> Optional[str]:
    """The explanation phrase in an LLM answer, or None when there is none.

    Takes the text after the last ``Explanation:`` (else the whole answer), the first sentence
    of its first non-empty line, strips quotes/markdown and "The neuron detects"-style leads. Rejects
    empty answers, answers that echo the ``<<marks>>`` or restate the instructions ("in
    common", "explain", "marked tokens", ...), and answers over 20 words.
    """
    t = text.strip()
    m = list(re.finditer(r"explanation\s*:", t, re.I))
    if m:
        t = t[m[-1].end():]
    lines = [ln.strip() for ln in t.splitlines() if ln.strip()]
    if not lines:
        return None
    lines[0] = re.split(r"(?<=[a-z0-9\)\]\"'])\.\s", lines[0])[0]  # first sentence
    t = _unquote(lines[0].strip(" *`_-#").rstrip(".").strip())
    t = _unquote(_LEAD.sub("", t).strip(" *`").rstrip(".").strip())
    if len(t) < 2 or "<<" in t or ">>" in t or len(t.split()) > 20 or not re.search(r"[A-Za-z0-9]", t):
        return None
    if _ECHO.search(t):  # restates the instructions instead of answering
        return None
    return t


class LLMExplainer:
    def __init__(self, client, attempts: int = 3, max_new_tokens: int = 30, context: int = 12):
        self.client, self.attempts, self.max_new_tokens, self.context = client, attempts, max_new_tokens, context
        self.name = f"llm:{client.name}"

    def explain(self, ex, source=None, seed: int = 0) -> Explanation:
        msgs = build_prompt(ex, self.context)
        p = c = 0
        raws = []
        for attempt in range(self.attempts):
            comp = self.client.complete(msgs, max_tokens=self.max_new_tokens,
                                        temperature=0.0 if attempt == 0 else 0.7, seed=seed * 1000 + attempt,
                                        prefix="Explanation:")
            p, c = p + comp.prompt_tokens, c + comp.completion_tokens
            text = parse_explanation(comp.text)
            if text is not None:
                return Explanation(text, self.name, "llm", p, c, attempt, len(ex.explain))
            raws.append(comp.text.strip()[:80])
        raise ExplainError(f"unparseable LLM explanation after {self.attempts} tries: {raws}")


class TopTokensExplainer:
    name = "baseline:top-tokens"

    def __init__(self, k: int = 3):
        self.k = k

    def explain(self, ex, source=None, seed: int = 0) -> Explanation:
        weight: Counter = Counter()
        for r in ex.explain:
            for tok, a in zip(r.tokens, r.acts):
                if a > 0.3 * ex.max_act:
                    weight[tok.strip() or repr(tok)] += a  # whitespace tokens shown as ' ' / '\\n'

        top = [t for t, _ in weight.most_common(self.k)]
        if not top:
            raise ExplainError(f"feature {ex.feature}: no activating token in its explanation examples")
        return Explanation("the tokens " + ", ".join(f'"{t}"' for t in top), self.name, "baseline",
                           n_examples=len(ex.explain))


def residual_direction(model, site: str, vec: torch.Tensor) -> torch.Tensor:
    """Map a direction at ``site`` into the residual stream ([d_model])."""
    if vec.shape[-1] == model.cfg.d_model:
        return vec
    if site.endswith("mlp.hook_post"):
        mlp = model.hf.get_submodule(model.site_def(site).module.rsplit(".", 1)[0]
                                     if "." in model.site_def(site).module else model.site_def(site).module)
        for mod in mlp.modules():
            w = getattr(mod, "weight", None)
            if w is None or w.ndim != 2:
                continue
            if tuple(w.shape) == (model.cfg.d_model, vec.shape[-1]):
                return w @ vec.to(w.dtype)  # Linear: [d_model d_mlp] @ [d_mlp]
            if tuple(w.shape) == (vec.shape[-1], model.cfg.d_model) and type(mod).__name__ == "Conv1D":
                return vec.to(w.dtype) @ w  # GPT-2 Conv1D stores [in out]
    raise ExplainError(f"the logit-lens explainer needs a residual-stream site or mlp.hook_post, not {site}")


class LogitLensExplainer:
    name = "baseline:logit-lens"

    def __init__(self, k: int = 5):
        self.k = k

    @torch.no_grad()
    def explain(self, ex, source=None, seed: int = 0) -> Explanation:
        vec = source.steer_vector(ex.feature) if source is not None else None
        if vec is None:
            raise ExplainError(f"{getattr(source, 'name', 'this source')} has no decoder direction; "
                               f"the logit-lens explainer needs neurons or an SAE")
        model = source.model
        d = residual_direction(model, getattr(source, 'steer_site', source.site), vec).float()
        try:
            norm = model.hf.get_submodule(model.site_def("ln_final.hook_normalized").module)
            if getattr(norm, "weight", None) is not None:
                d = d * norm.weight.float()
        except Exception:  # noqa: BLE001 - a model without a final norm site: plain unembedding
            pass
        logits = model.hf.get_output_embeddings().weight.float() @ d  # [vocab]
        toks = []
        for i in logits.topk(self.k * 4).indices.tolist():
            s = model.tokenizer.decode([i]).strip()
            if s and s not in toks:
                toks.append(s)
            if len(toks) == self.k:
                break
        return Explanation("promotes tokens " + ", ".join(f'"{t}"' for t in toks), self.name, "baseline",
                           n_examples=0)


def build_explainer(spec: str, llm_model: str = "default", max_new_tokens: int = 30, attempts: int = 3):
    if spec == "tokens":
        return TopTokensExplainer()
    if spec == "logit-lens":
        return LogitLensExplainer()
    from .llm_base import build_client

    return LLMExplainer(build_client(spec, llm_model), attempts=attempts, max_new_tokens=max_new_tokens)
