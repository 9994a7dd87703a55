"""A minimal deterministic OpenAI-compatible chat-completions server (for tests and smoke runs).

Speaks the real HTTP protocol on 127.0.0.1 (``POST /v1/chat/completions``, ``GET /v1/models``)
with a rule-based "model" — not an LLM:

1. Judge prompts (``Description: D`` … ``Text: T``): answers ``Yes`` when T matches D by rule
   (D mentions digits/numbers → T has a digit; capitalised → a capitalised word; punctuation
   → a punctuation mark; otherwise a content word or quoted token of D occurs in T), with
   ``top_logprobs`` giving P(Yes) = 0.9 or 0.1.
2. Explainer prompts (``Excerpts:``): ``Explanation: the token "X"`` for the most often marked token.
3. Simulation prompts (``Tokens: …``): ``tok = 9`` for tokens matching D by the same rule, else 0.
4. Fault injection: ``faults`` — HTTP codes returned (in order) before normal answers;
   ``delay`` — seconds to sleep before answering; ``garbage`` — answer unparseable text.
5. ``usage``: prompt tokens = whitespace words of the messages, completion = words answered.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

STOP = {"the", "and", "of", "a", "an", "to", "in", "words", "word", "tokens", "token", "such", "as", "like",
        "right", "after", "marks", "first", "new", "with"}


def matches(desc: str, text: str) -> bool:
    d = desc.lower()
    if "digit" in d or "number" in d:
        return bool(re.search(r"\d", text))
    if "capitali" in d:
        return bool(re.search(r"\b[A-Z][a-z]+", text))
    if "punctuation" in d:
        return bool(re.search(r"[,.;:!?]", text))
    quoted = re.findall(r'"([^"]+)"', desc) + re.findall(r"'([^']+)'", desc)
    words = quoted + [w for w in re.findall(r"[a-z]{3,}", d) if w not in STOP]
    low = text.lower()
    return any(re.search(r"(?<![a-z])" + re.escape(w.lower().strip()) + r"(?![a-z])", low) for w in words if w.strip())


class FakeLLM:
    """The rule-based model plus fault-injection state (thread-safe)."""

    def __init__(self, faults: Optional[list] = None, delay: float = 0.0, garbage: bool = False):
        self.faults = list(faults or [])
        self.delay, self.garbage = delay, garbage
        self.requests = 0
        self.lock = threading.Lock()

    def answer(self, body: dict) -> str:
        user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        if self.garbage:
            return "<<???>>"
        if user.startswith("Excerpts:"):
            marks = Counter(m.strip() for m in re.findall(r"<<(.*?)>>", user))
            return f'Explanation: the token "{marks.most_common(1)[0][0]}"' if marks else "Explanation: nothing"
        m = re.search(r"Description: (.*)\n(Text|Tokens): (.*)\n", user)
        if not m:
            return "Yes" if "ping" not in user else "pong"
        desc, kind, text = m.groups()
        if kind == "Tokens":
            return "\n".join(f"{t} = {9 if matches(desc, t) else 0}" for t in text.split(" "))
        marked = re.findall(r"<<(.*?)>>", text)
        target = " ".join(marked) if "marked" in user and marked else text
        return "Yes" if matches(desc, target) else "No"


def _handler(llm: FakeLLM):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def _send(self, code: int, payload: dict, headers: Optional[dict] = None):
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with llm.lock:
                llm.requests += 1
                fault = llm.faults.pop(0) if llm.faults else None
            if llm.delay:
                time.sleep(llm.delay)
            if fault is not None:
                return self._send(fault, {"error": {"message": f"injected {fault}"}}, {"Retry-After": "0"})
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._send(404, {"error": {"message": "not found"}})
            text = llm.answer(body)
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            if body.get("logprobs") and text in ("Yes", "No"):
                p = 0.9 if text == "Yes" else 0.1
                choice["logprobs"] = {"content": [{"token": text, "logprob": math.log(max(p, 1 - p)),
                                                   "top_logprobs": [{"token": "Yes", "logprob": math.log(p)},
                                                                    {"token": "No", "logprob": math.log(1 - p)}]}]}
            n_prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
            self._send(200, {"id": "fake", "object": "chat.completion", "model": body.get("model", "fake"),
                             "choices": [choice], "usage": {"prompt_tokens": n_prompt,
                                                            "completion_tokens": len(text.split()),
                                                            "total_tokens": n_prompt + len(text.split())}})
    return H


class FakeServer:
    """``with FakeServer(...) as srv: srv.url`` — serves on a free port of 127.0.0.1."""

    def __init__(self, **kw):
        self.llm = FakeLLM(**kw)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.llm))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FakeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main(port: int = 8765) -> None:  # pragma: no cover - manual smoke runs
    srv = ThreadingHTTPServer(("127.0.0.1", port), _handler(FakeLLM()))
    print(f"fake OpenAI-compatible server on http://127.0.0.1:{port}/v1")
    srv.serve_forever()


if __name__ == "__main__":  # pragma: no cover
    main()
