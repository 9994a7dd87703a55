"""Unit tests of the labelling pieces: metrics, config, examples (disjoint documents), parsing,
baseline explainers, the local LLM client's read-outs, and the intervention scorer."""

from __future__ import annotations

import math

import pytest
import torch

from interpbench.errors import ConfigError
from interpbench.explain import metrics
from interpbench.explain.config import LabelConfig
from interpbench.explain.examples import ActivationRecord, FeatureExamples, LeakError, sample_examples, split_docs
from interpbench.explain.explainers import LogitLensExplainer, TopTokensExplainer, parse_explanation, show_record
from interpbench.explain.harvest import Harvest
from interpbench.explain.scorers.base import RANDOM_EXPLANATIONS, Judged, random_explanation


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: several times faster than two on this shared 2-core CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_metrics_exact():
    assert metrics.auroc([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1]) == 0.75
    assert metrics.auroc([1, 0], [0.5, 0.5]) == 0.5  # ties count half
    assert metrics.balanced_accuracy([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1]) == 0.5
    assert metrics.f1([1, 1, 0, 0], [0.9, 0.6, 0.6, 0.1]) == pytest.approx(0.8)
    assert metrics.f1([1, 0], [0.1, 0.1]) == 0.0
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert math.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(metrics.auroc([1, 1], [0.2, 0.3]))


def test_config_validation_and_diff():
    a = LabelConfig(source="neurons:m:blocks.0.mlp.hook_post", features="0:10")
    assert list(a.feature_range) == list(range(10))
    assert LabelConfig.from_dict(a.to_dict()) == a
    b = LabelConfig(source="neurons:m:blocks.0.mlp.hook_post", features="0:10", n_docs=7)
    assert a.config_hash() != b.config_hash() and a.job_id() == b.job_id()
    assert a.diff(b) == ["n_docs: 96 != 7"]
    with pytest.raises(ConfigError, match="unknown scorer"):
        LabelConfig(source="synthetic:x", scorers=("detectoin",))
    with pytest.raises(ConfigError, match="STOP"):
        LabelConfig(source="synthetic:x", features="5:5")
    with pytest.raises(ConfigError, match="explainer"):
        LabelConfig(source="synthetic:x", explainer="gpt")
    with pytest.raises(ConfigError, match="unknown label config"):
        LabelConfig.from_dict({"source": "synthetic:x", "bogus": 1})


def _harvest(n_docs=10, per_doc=2, pos=6, seed=0):
    """Feature 0 fires (value = window index + 1) at position 2 of every even window; feature 1 never."""
    W = n_docs * per_doc
    acts = torch.zeros(W, pos, 2)
    for w in range(0, W, 2):
        acts[w, 2, 0] = w + 1.0
    return Harvest(torch.arange(W * pos).reshape(W, pos), torch.arange(W) // per_doc, acts, (0, 1), "test")


def _cfg(**kw):
    base = dict(source="synthetic:x", features="0:2", n_explain_top=2, n_explain_quantile=1, n_score_pos=2,
                n_score_neg=2, min_active=1, score_context=0)
    return LabelConfig(**{**base, **kw})


def test_examples_from_disjoint_documents():
    h = _harvest()
    cfg = _cfg()
    ex = sample_examples(h, 0, cfg, lambda w: [f"t{w}_{i}" for i in range(6)])
    explain_docs, score_docs = split_docs(h.doc, cfg.seed)
    assert explain_docs.isdisjoint(score_docs) and explain_docs | score_docs == set(range(10))
    assert {r.doc for r in ex.explain} <= explain_docs
    assert {r.doc for r in ex.score_pos + ex.score_neg} <= score_docs
    assert {r.doc for r in ex.explain}.isdisjoint({r.doc for r in ex.score_pos + ex.score_neg})
    # top examples are the strongest windows of the explanation documents, in order
    exp_windows = sorted((w for w in range(0, 20, 2) if w // 2 in explain_docs), reverse=True)
    assert [r.window for r in ex.explain[:2]] == exp_windows[:2]
    assert all(r.max_act > 0 for r in ex.score_pos) and all(r.max_act == 0 for r in ex.score_neg)
    assert ex.max_act == 19.0
    assert FeatureExamples.from_dict(ex.to_dict()) == ex


def test_leak_is_refused():
    r = ActivationRecord(3, 0, ["a"], [1.0])
    with pytest.raises(LeakError, match="share documents"):
        FeatureExamples(0, 1.0, [r], [ActivationRecord(3, 1, ["b"], [1.0])], [])


def test_dead_latents():
    h = _harvest()
    ex = sample_examples(h, 1, _cfg(), lambda w: ["x"] * 6)
    assert ex.dead.startswith("never activates") and not ex.explain
    ex = sample_examples(h, 0, _cfg(min_active=50), lambda w: ["x"] * 6)
    assert ex.dead.startswith("too few activating windows")


def test_scoring_examples_are_cropped_around_the_peak():
    h = _harvest(pos=12)
    ex = sample_examples(h, 0, _cfg(score_context=4), lambda w: [f"t{i}" for i in range(12)])
    for r in ex.score_pos:
        assert len(r.tokens) == 4 and r.acts.index(max(r.acts)) == 1  # peak at position 2 → crop [1, 5)
    assert all(len(r.tokens) == 4 for r in ex.score_neg)


@pytest.mark.parametrize("raw, want", [
    ("Explanation: names of cities.", "names of cities"),
    ("Sure!\nExplanation: \"the word 'and'\"", "the word 'and'"),
    ("The neuron detects numbers and digits", "numbers and digits"),
    ("  **Explanation:** punctuation\nmore text", "punctuation"),
    ("", None), ("Explanation:", None), ("<<the>>(7) <<a>>(3)", None), ("?!", None),
    ("word " * 30, None), ("Explanation: A few words to explain what the tokens have in common", None),
])
def test_parse_explanation(raw, want):
    assert parse_explanation(raw) == want


def _ex(records, max_act):
    return FeatureExamples(0, max_act, records, [], [])


def test_top_tokens_explainer_and_prompt_marks():
    r1 = ActivationRecord(0, 0, [" a", " 7", " b", " 3"], [0.0, 2.0, 0.1, 1.0])
    r2 = ActivationRecord(1, 1, [" 7", " c"], [1.5, 0.0])
    e = TopTokensExplainer().explain(_ex([r1, r2], 2.0))
    assert e.text == 'the tokens "7", "3"' and e.kind == "baseline" and e.explainer == "baseline:top-tokens"
    assert show_record(r1, 2.0) == "a<< 7>>(10) b<< 3>>(5)"
    nl = ActivationRecord(2, 2, ["x", "\n"], [0.0, 1.0])
    assert TopTokensExplainer().explain(_ex([nl], 1.0)).text == 'the tokens "' + repr("\n") + '"'


def test_logit_lens_explainer_matches_manual(tiny_llama):
    from interpbench.explain.sources import NeuronSource

    src = NeuronSource(tiny_llama, "blocks.1.mlp.hook_post")
    e = LogitLensExplainer(k=3).explain(_ex([ActivationRecord(0, 0, ["x"], [1.0])], 1.0), src)
    hf = tiny_llama.hf
    d = hf.model.layers[1].mlp.down_proj.weight[:, 0] * hf.model.norm.weight
    top = (hf.lm_head.weight @ d).topk(12).indices.tolist()
    want = []
    for i in top:
        s = tiny_llama.tokenizer.decode([i]).strip()
        if s and s not in want:
            want.append(s)
    assert e.text == "promotes tokens " + ", ".join(f'"{t}"' for t in want[:3])
    assert e.kind == "baseline"


def test_random_explanation_control_is_seeded_and_differs():
    a = random_explanation(5, 0, RANDOM_EXPLANATIONS[0])
    assert a == random_explanation(5, 0, RANDOM_EXPLANATIONS[0]) and a in RANDOM_EXPLANATIONS
    assert all(random_explanation(f, 0, x) != x for f in range(20) for x in RANDOM_EXPLANATIONS[:3])
    j = Judged([1, 0, 1], [0.5, None, 0.2])
    assert j.parse_failures == 1 and j.kept() == ([1, 1], [0.5, 0.2])


def test_local_client_readouts_match_naive(tiny_llama_path):
    from interpbench.explain.llm_local import LocalClient
    from interpbench.explain.scorers.detection import YES_NO

    c = LocalClient(str(tiny_llama_path))
    prompts = [[{"role": "user", "content": "Is 2 a number?"}], [{"role": "user", "content": "Hi there, is the sky green today?"}]]
    got = c.choice_probs(prompts, YES_NO)
    for p, g in zip(prompts, got):
        ids = torch.tensor([c.render(p)])
        with torch.no_grad():
            probs = c.hf(input_ids=ids).logits[0, -1].softmax(-1)
        yes = probs[c._first_ids(YES_NO["yes"])].sum()
        no = probs[c._first_ids(YES_NO["no"])].sum()
        assert g["yes"] == pytest.approx(float(yes / (yes + no)), abs=1e-5)
        assert g["yes"] + g["no"] == pytest.approx(1.0)
    ids = c.render(prompts[0]) + [33, 34, 35]
    pp = c.position_probs(ids, [len(ids) - 2, len(ids) - 1], [32, 33, 34])
    with torch.no_grad():
        full = c.hf(input_ids=torch.tensor([ids])).logits[0]
    assert torch.allclose(pp[1], full[-1, [32, 33, 34]].softmax(-1), atol=1e-5)
    assert torch.allclose(pp[0], full[-2, [32, 33, 34]].softmax(-1), atol=1e-5)  # unembedding only where read
    pp2 = c.position_probs(ids, [len(ids) - 1, 3], [32, 33, 34])  # any order
    assert torch.allclose(pp2[1], full[3, [32, 33, 34]].softmax(-1), atol=1e-5)
    assert c.usage.prompt_tokens > 0 and c.usage.calls == 4
    comp = c.complete(prompts[0], max_tokens=3)
    assert comp.completion_tokens <= 3 and comp.prompt_tokens == len(c.render(prompts[0]))


def test_intervention_scorer_matches_manual(tiny_llama):
    from interpbench.explain.scorers.intervention import PROMPTS, InterventionScorer, explanation_token_ids
    from interpbench.explain.sources import NeuronSource
    from interpbench.interventions import Add

    src = NeuronSource(tiny_llama, "blocks.0.mlp.hook_post")
    sc = InterventionScorer(src, coeff=2.0)
    ex = FeatureExamples(3, 1.5, [], [], [])
    res = sc.score('the tokens "cat", "dog"', ex)
    ids = explanation_token_ids(tiny_llama.tokenizer, 'the tokens "cat", "dog"')
    deltas = []
    v = torch.zeros(src.n_latents)
    v[3] = 1.0
    for x in PROMPTS:
        clean = tiny_llama(x)[0, -1].log_softmax(-1)
        steer = tiny_llama.run_with_interventions(x, {src.site: Add(v, 3.0)})[0, -1].log_softmax(-1)
        deltas.append(float(steer[ids].logsumexp(-1) - clean[ids].logsumexp(-1)))
    assert res.score == pytest.approx(sum(deltas) / len(deltas), abs=1e-5)
    assert res.scorer == "intervention" and res.shuffled_latent["latent"] != 3
    assert res.random_explanation["score"] is not None


def test_llm_scorers_run_on_a_local_model(tiny_llama_path):
    """Fuzzing, detection and simulation through the local client's logit read-outs (tiny model)."""
    from interpbench.explain.llm_local import LocalClient
    from interpbench.explain.scorers.detection import DetectionScorer, FuzzingScorer
    from interpbench.explain.scorers.simulation import SimulationScorer

    c = LocalClient(str(tiny_llama_path))
    pos = [ActivationRecord(10 + i, i, ["Call", " 5", "5", " now"], [0.0, 2.0, 1.0, 0.0]) for i in range(2)]
    neg = [ActivationRecord(20 + i, 5 + i, ["a", " cat", " sat", " down"], [0.0] * 4) for i in range(2)]
    ex = FeatureExamples(0, 2.0, [ActivationRecord(0, 9, ["x"], [1.0])], pos, neg)
    for scorer in (DetectionScorer(c), FuzzingScorer(c)):
        r = scorer.score("digits", ex)
        assert r.n_items == 4 and r.parse_failures == 0 and 0.0 <= r.score <= 1.0
        assert set(r.metrics) == {"score", "auroc", "balanced_accuracy", "f1"} and r.prompt_tokens > 0
    r = SimulationScorer(c).score("digits", ex)
    assert r.n_items == 16 and r.parse_failures == 0 and r.completion_tokens == 0
    assert r.score is None or -1.0 <= r.score <= 1.0


@pytest.mark.parametrize("site", ["blocks.0.mlp.hook_post", "blocks.1.hook_resid_post", "blocks.0.hook_resid_mid"])
def test_read_site_early_stop_equals_full_forward(tiny, site):
    from interpbench.explain.sources import NeuronSource, read_site

    toks = tiny.to_tokens("The cat sat on the mat")
    _, cache = tiny.run_with_cache(toks, names=[site])
    assert torch.equal(read_site(tiny, toks, site), cache[site])
    acts = NeuronSource(tiny, site).latent_acts(toks, [3, 1])
    assert torch.equal(acts, cache[site][..., [3, 1]].float())
