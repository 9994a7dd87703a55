"""OpenAI-compatible chat-completions client (OpenAI, vLLM, Ollama, llama.cpp server).

1. ``POST {base}/chat/completions`` with ``model``, ``messages``, ``max_tokens``,
   ``temperature``, ``seed`` (and ``logprobs``/``top_logprobs`` for choice probabilities).
   ``base`` is the URL given, with ``/v1`` appended when it has no path.
2. At most ``max_concurrency`` requests in flight per endpoint (a semaphore).
3. Retries on connection errors, timeouts, HTTP 429 and 5xx: up to ``retries`` more tries,
   sleeping ``backoff · 2^k`` seconds (or the server's ``Retry-After``). Other 4xx fail at once.
4. Responses are cached on disk by the SHA-256 of the endpoint URL and the request body
   (``model``, messages, sampling settings), written atomically; a cache hit costs no tokens.
5. Usage: prompt/completion tokens from the response's ``usage`` (counted 0 when absent),
   ``cost = prompt·price_in + completion·price_out`` (USD per million tokens).
6. :class:`PoolClient` spreads calls round-robin over several endpoints and fails over to
   the next one when an endpoint has exhausted its retries.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
import time
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlparse

from ..errors import InterpbenchError
from ..paths import atomic_write_text, cache_dir
from .llm_base import Completion, Usage, parse_choice


class EndpointError(InterpbenchError):
    """An LLM endpoint that cannot be reached or keeps failing."""


def chat_url(url: str) -> str:
    u = url.rstrip("/")
    if u.endswith("/chat/completions"):
        return u
    if urlparse(u).path in ("", "/"):
        u += "/v1"
    return u + "/chat/completions"


class OpenAIClient:
    def __init__(self, url: str, model: str = "default", *, api_key: Optional[str] = None,
                 max_concurrency: int = 4, retries: int = 4, backoff: float = 0.5, timeout: float = 60.0,
                 price_in: float = 0.0, price_out: float = 0.0, cache_dir: Optional[Path] = None):
        import httpx

        self.url, self.model = chat_url(url), model
        self.name = f"openai:{url}#{model}"
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.price_in, self.price_out = price_in, price_out
        self.usage = Usage()
        self._sem = threading.BoundedSemaphore(max_concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)
        self._cache = Path(cache_dir) if cache_dir is not None else cache_dir_default()

    # -- transport ----------------------------------------------------------------
    def _post(self, body: dict, use_cache: bool = True) -> dict:
        import httpx

        key = hashlib.sha256(json.dumps([self.url, body], sort_keys=True).encode()).hexdigest()
        path = self._cache / key[:2] / f"{key}.json"
        if use_cache and path.exists():
            self.usage.add(cached=1)
            return {**json.loads(path.read_text()), "_cached": True}
        last = "no attempt"
        for attempt in range(self.retries + 1):
            wait = self.backoff * 2 ** attempt
            try:
                with self._sem:
                    r = self._http.post(self.url, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if r.status_code == 200:
                    data = r.json()
                    u = data.get("usage") or {}
                    p, c = int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
                    self.usage.add(calls=1, prompt_tokens=p, completion_tokens=c,
                                   cost_usd=(p * self.price_in + c * self.price_out) / 1e6)
                    if use_cache:
                        atomic_write_text(path, json.dumps(data))
                    return data
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                if r.status_code != 429 and r.status_code < 500:
                    raise EndpointError(f"{self.url} refused the request ({last}); check the model name and key")
                ra = r.headers.get("retry-after")
                if ra and ra.replace(".", "", 1).isdigit():
                    wait = float(ra)
            if attempt < self.retries:
                self.usage.add(retries=1)
                time.sleep(wait)
        raise EndpointError(f"{self.url} failed after {self.retries + 1} tries ({last})")

    def check(self) -> None:
        """Raise :class:`EndpointError` now if the endpoint cannot answer a 1-token request."""
        saved = self.retries
        self.retries = min(saved, 1)
        try:
            self._post({"model": self.model, "messages": [{"role": "user", "content": "ping"}],
                        "max_tokens": 1, "temperature": 0.0}, use_cache=False)
        finally:
            self.retries = saved

    # -- API ----------------------------------------------------------------------
    def complete(self, messages, max_tokens: int = 30, temperature: float = 0.0, seed: int = 0,
                 prefix: str = "") -> Completion:
        """``prefix`` (an answer pre-fill) is not part of the chat-completions protocol: ignored."""
        data = self._post({"model": self.model, "messages": messages, "max_tokens": max_tokens,
                           "temperature": temperature, "seed": seed})
        try:
            text = data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.url} returned no choices[0].message.content") from None
        u = data.get("usage") or {}
        cached = bool(data.get("_cached"))
        return Completion(text, 0 if cached else int(u.get("prompt_tokens", 0)),
                          0 if cached else int(u.get("completion_tokens", 0)), cached)

    def choice_probs(self, prompts, choices) -> list[Optional[dict[str, float]]]:
        out = []
        for msgs in prompts:
            data = self._post({"model": self.model, "messages": msgs, "max_tokens": 1, "temperature": 0.0,
                               "logprobs": True, "top_logprobs": 10})
            out.append(_probs_from_response(data, choices))
        return out


def _probs_from_response(data: dict, choices) -> Optional[dict[str, float]]:
    try:
        ch = data["choices"][0]
        text = ch["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return None
    top = (((ch.get("logprobs") or {}).get("content") or [{}])[0] or {}).get("top_logprobs") or []
    mass = {name: 0.0 for name in choices}
    for t in top:
        name = parse_choice(t.get("token", ""), choices)
        if name is not None and t.get("token", "").strip():
            mass[name] += math.exp(float(t.get("logprob", -math.inf)))
    total = sum(mass.values())
    if total > 0:
        return {k: v / total for k, v in mass.items()}
    name = parse_choice(text, choices)
    return None if name is None else {k: float(k == name) for k in choices}


class PoolClient:
    """Round-robin over several endpoints, failing over when one keeps failing."""

    def __init__(self, clients: Sequence[OpenAIClient]):
        self.clients = list(clients)
        self.name = "pool:" + ",".join(c.name for c in self.clients)
        self._rr = itertools.cycle(range(len(self.clients)))
        self._lock = threading.Lock()

    @property
    def usage(self) -> Usage:
        total = Usage()
        for c in self.clients:
            total.add(**{k: v for k, v in c.usage.snapshot().items()})
        return total

    def _call(self, method: str, *args, **kw):
        with self._lock:
            start = next(self._rr)
        errors = []
        for k in range(len(self.clients)):
            c = self.clients[(start + k) % len(self.clients)]
            try:
                return getattr(c, method)(*args, **kw)
            except EndpointError as exc:
                errors.append(str(exc))
        raise EndpointError("every endpoint in the pool failed: " + " | ".join(errors))

    def check(self) -> None:
        for c in self.clients:
            c.check()

    def complete(self, *args, **kw) -> Completion:
        return self._call("complete", *args, **kw)

    def choice_probs(self, prompts, choices):
        return self._call("choice_probs", prompts, choices)


def cache_dir_default() -> Path:
    return cache_dir() / "labels" / "llm-cache"
