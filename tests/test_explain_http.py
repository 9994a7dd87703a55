"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1: retries on 429/500,
timeouts, the on-disk cache, token/cost accounting, logprob read-out, pools, unreachable
endpoints, and the LLM explainer's parse-failure path."""

from __future__ import annotations

import socket

import pytest
import torch

from interpbench.explain.examples import ActivationRecord, FeatureExamples
from interpbench.explain.explainers import ExplainError, LLMExplainer
from interpbench.explain.fake_server import FakeServer
from interpbench.explain.llm_http import EndpointError, OpenAIClient, PoolClient, chat_url
from interpbench.explain.scorers.detection import YES_NO, DetectionScorer
from interpbench.explain.scorers.simulation import SimulationScorer

MSG = [{"role": "user", "content": "Description: digits\nText: call 555 now\nDoes it? Answer Yes or No."}]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: several times faster than two on this shared 2-core CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _client(srv, tmp_path, **kw):
    kw = {"backoff": 0.01, "timeout": 5.0, "cache_dir": tmp_path / "cache", **kw}
    return OpenAIClient(srv.url, model="fake", **kw)


def test_chat_url():
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


def test_retries_on_429_and_500_then_succeeds_and_caches(tmp_path):
    with FakeServer(faults=[429, 500, 503]) as srv:
        c = _client(srv, tmp_path, price_in=2.0, price_out=10.0)
        out = c.complete(MSG, max_tokens=3)
        assert out.text == "Yes" and not out.cached
        assert srv.llm.requests == 4 and c.usage.retries == 3
        n_prompt = sum(len(m["content"].split()) for m in MSG)
        assert (out.prompt_tokens, out.completion_tokens) == (n_prompt, 1)
        assert c.usage.cost_usd == pytest.approx((n_prompt * 2.0 + 1 * 10.0) / 1e6)
        again = c.complete(MSG, max_tokens=3)
        assert again.text == "Yes" and again.cached and again.prompt_tokens == 0
        assert srv.llm.requests == 4 and c.usage.cached == 1 and c.usage.calls == 1
        # a new client over the same cache directory needs no request either
        assert _client(srv, tmp_path).complete(MSG, max_tokens=3).cached and srv.llm.requests == 4


def test_gives_up_after_retries_and_does_not_retry_4xx(tmp_path):
    with FakeServer(faults=[500] * 10) as srv:
        c = _client(srv, tmp_path, retries=2)
        with pytest.raises(EndpointError, match="failed after 3 tries.*HTTP 500"):
            c.complete(MSG)
        assert srv.llm.requests == 3
    with FakeServer(faults=[401]) as srv:
        with pytest.raises(EndpointError, match="refused the request.*401"):
            _client(srv, tmp_path).complete(MSG)
        assert srv.llm.requests == 1


def test_timeout_is_retried(tmp_path):
    with FakeServer(delay=0.6) as srv:
        c = _client(srv, tmp_path, timeout=0.2, retries=1)
        with pytest.raises(EndpointError, match="Timeout"):
            c.complete(MSG)
        assert c.usage.retries == 1


def test_unreachable_endpoint_fails_clearly(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    c = OpenAIClient(f"http://127.0.0.1:{port}", cache_dir=tmp_path, backoff=0.01, timeout=1.0)
    with pytest.raises(EndpointError, match=f"127.0.0.1:{port}"):
        c.check()


def test_choice_probs_from_logprobs_and_pool_failover(tmp_path):
    with FakeServer() as good, FakeServer(faults=[500] * 20) as bad:
        pool = PoolClient([_client(bad, tmp_path / "b", retries=0), _client(good, tmp_path / "g")])
        no = [{"role": "user", "content": "Description: digits\nText: no numbers here\nAnswer Yes or No."}]
        probs = pool.choice_probs([MSG, no], YES_NO)
        assert probs[0]["yes"] == pytest.approx(0.9) and probs[1]["yes"] == pytest.approx(0.1)
        assert pool.usage.calls == 2 and bad.llm.requests >= 1


def _examples():
    pos = [ActivationRecord(10 + i, i, ["Call", " 5", "5", " now"], [0.0, 2.0, 2.0, 0.0]) for i in range(3)]
    neg = [ActivationRecord(20 + i, 5 + i, ["a", " cat", " sat", " down"], [0.0] * 4) for i in range(3)]
    exp = [ActivationRecord(i, 9 + i, ["in", " 1999", " we"], [0.0, 3.0, 0.0]) for i in range(2)]
    return FeatureExamples(0, 3.0, exp, pos, neg)


def test_detection_and_simulation_over_http(tmp_path):
    with FakeServer() as srv:
        c = _client(srv, tmp_path)
        r = DetectionScorer(c).score("digits and numbers", _examples())
        assert r.score == 1.0 and r.metrics["balanced_accuracy"] == 1.0 and r.metrics["f1"] == 1.0
        assert r.n_pos == 3 and r.n_neg == 3 and r.parse_failures == 0 and r.prompt_tokens > 0
        assert r.random_explanation["score"] is not None and r.model.startswith("openai:")
        s = SimulationScorer(c).score("digits and numbers", _examples())
        assert s.n_items == 24 and s.score == pytest.approx(1.0)  # predicted 9 exactly on the digit tokens
        e = LLMExplainer(c).explain(_examples())
        assert e.text == 'the token "1999"' and e.kind == "llm" and e.prompt_tokens > 0


def test_unparseable_answers_are_counted_never_coerced(tmp_path):
    with FakeServer(garbage=True) as srv:
        c = _client(srv, tmp_path)
        with pytest.raises(ExplainError, match="unparseable LLM explanation after 3 tries"):
            LLMExplainer(c, attempts=3).explain(_examples())
        r = DetectionScorer(c).score("digits", _examples())
        assert r.score is None and r.parse_failures == 12 and r.n_items == 0
