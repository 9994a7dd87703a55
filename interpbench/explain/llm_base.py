"""One client interface for every LLM backend (local transformers, OpenAI-compatible HTTP).

A client does two things:

- ``complete(messages, max_tokens, temperature, seed)`` → :class:`Completion` (chat completion);
- ``choice_probs(list of messages, choices)`` → per prompt, the probability of each answer
  choice for the *next* token (``None`` where the answer could not be parsed). Local models
  read it from the next-token logits (sum of the probabilities of the choice's spellings,
  renormalised over the choices); HTTP backends from returned ``top_logprobs`` when the
  server gives them, else from the parsed text answer (probability 1 for the chosen one).

Clients count calls, cache hits, prompt/completion tokens and cost in :class:`Usage`.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Optional, Protocol, Sequence

Messages = list  # list of {"role": ..., "content": ...}


@dataclass(frozen=True)
class Completion:
    """One chat completion."""

    text: str
    """Generated text."""
    prompt_tokens: int
    """Prompt tokens billed (0 for a cache hit)."""
    completion_tokens: int
    """Completion tokens billed (0 for a cache hit)."""
    cached: bool = False
    """Served from the on-disk response cache."""


_THREAD = threading.local()


def thread_tokens() -> tuple[int, int]:
    """(prompt, completion) tokens billed by any client *in this thread* so far — scorers take
    differences of it, so per-feature counts stay exact when several threads share a client."""
    return getattr(_THREAD, "prompt", 0), getattr(_THREAD, "completion", 0)


@dataclass
class Usage:
    """Running token and cost accounting of a client (thread-safe through ``add``)."""

    calls: int = 0
    cached: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)
        _THREAD.prompt = getattr(_THREAD, "prompt", 0) + kw.get("prompt_tokens", 0)
        _THREAD.completion = getattr(_THREAD, "completion", 0) + kw.get("completion_tokens", 0)

    def snapshot(self) -> dict:
        with self._lock:
            return {k: getattr(self, k) for k in ("calls", "cached", "retries", "prompt_tokens",
                                                  "completion_tokens", "cost_usd")}


class LLMClient(Protocol):
    name: str
    """Model label written into records (e.g. ``local:smollm2-135m``, ``openai:URL#model``)."""
    usage: Usage

    def complete(self, messages: Messages, max_tokens: int = 30, temperature: float = 0.0,
                 seed: int = 0, prefix: str = "") -> Completion: ...

    def choice_probs(self, prompts: Sequence[Messages], choices: dict[str, Sequence[str]]
                     ) -> list[Optional[dict[str, float]]]: ...


def parse_choice(text: str, choices: dict[str, Sequence[str]]) -> Optional[str]:
    """The choice whose spelling the answer starts with (case-insensitive), or None."""
    t = text.strip().strip("\"'*").lower()
    for name, spellings in choices.items():
        for s in spellings:
            if t.startswith(s.strip().lower()):
                return name
    return None


def build_client(spec: str, llm_model: str = "default", cache_root=None) -> LLMClient:
    """``local`` → bundled SmolLM2 (``local:SPEC`` another local chat model); ``openai:URL[,URL...]`` →
    HTTP client (a pool for several; the key from ``INTERPBENCH_LLM_API_KEY`` or ``OPENAI_API_KEY``)."""
    if spec == "local" or spec.startswith("local:"):
        from .llm_local import LocalClient

        return LocalClient(spec.partition(":")[2] or "smollm2-135m")
    if spec.startswith("openai:"):
        from .llm_http import OpenAIClient, PoolClient

        import os

        urls = [u for u in spec[len("openai:"):].split(",") if u]
        key = os.environ.get("INTERPBENCH_LLM_API_KEY") or os.environ.get("OPENAI_API_KEY")
        clients = [OpenAIClient(u, model=llm_model, cache_dir=cache_root, api_key=key) for u in urls]
        return clients[0] if len(clients) == 1 else PoolClient(clients)
    from ..errors import ConfigError

    raise ConfigError(f"unknown LLM backend {spec!r}; use local or openai:URL")
