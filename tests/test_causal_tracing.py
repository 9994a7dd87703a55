"""Causal tracing (interpbench.causal_tracing) and the facts task."""

from __future__ import annotations

import pytest
import torch

from interpbench.causal_tracing import (CATEGORIES, CausalTraceResult, FactTrace, TracingConfig,
                                        average_indirect_effect, causal_trace, embedding_std, token_categories,
                                        trace_fact)
from interpbench.interventions import Add, Patch
from interpbench.tasks.facts import FACTS, Fact, load_facts


def _fact(model, text="The Eiffel Tower is located in the city of", subject="The Eiffel Tower"):
    from interpbench.tasks.facts import subject_positions

    tokens = model.to_tokens(text)[0]
    answer = int(model(tokens[None])[0, -1].argmax())
    return Fact(subject, text, "?", tokens, subject_positions(model.tokenizer, text, subject), answer)


CFG = TracingConfig(samples=3, window=2, max_rows=64)


@pytest.mark.parametrize("sever", [None, "mlp", "attn"])
def test_restoring_last_state_recovers_clean_and_bos_keeps_corrupted(tiny, sever):
    f = _fact(tiny)
    t = trace_fact(tiny, f, "resid", sever, CFG, noise_std=0.5)
    L = tiny.cfg.n_layers
    assert t.scores.shape == (L, len(f.tokens))
    assert abs(t.p_clean - t.p_corrupted) > 1e-7  # the noise does something
    torch.testing.assert_close(t.scores[L - 1, -1], torch.tensor(t.p_clean), rtol=1e-4, atol=1e-7)
    if sever is None:  # position 0 (BOS) precedes the subject: its clean and noised states are equal
        torch.testing.assert_close(t.scores[:, 0], torch.full((L,), t.p_corrupted), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind", ["resid", "mlp", "attn"])
def test_batched_restoration_equals_naive_runs(tiny_llama, kind):
    m, f = tiny_llama, _fact(tiny_llama)
    std = 0.5
    t = trace_fact(m, f, kind, None, CFG, noise_std=std, seed=7)
    t_small = trace_fact(m, f, kind, None, TracingConfig(samples=3, window=2, max_rows=4), noise_std=std, seed=7)
    torch.testing.assert_close(t.scores, t_small.scores, rtol=1e-5, atol=1e-8)  # chunking does not matter
    site = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}[kind]
    _, clean = m.run_with_cache(f.tokens[None], f"blocks.*.{site}")
    g = torch.Generator().manual_seed(7)
    noise = torch.zeros(3, len(f.tokens), m.cfg.d_model)
    noise[:, list(f.subject_pos)] = torch.randn(3, len(f.subject_pos), m.cfg.d_model, generator=g) * std
    toks = f.tokens[None].expand(3, -1)
    with torch.no_grad():
        p0 = m.run_with_interventions(toks, {"hook_embed": Add(noise)})[:, -1].softmax(-1)[:, f.answer].mean()
    assert t.p_corrupted == pytest.approx(float(p0), rel=1e-5)
    windows = {0: [0], 1: [0, 1]} if kind != "resid" else {0: [0], 1: [1]}  # window=2 on 2 layers
    for layer in range(m.cfg.n_layers):
        for p in (1, 3, len(f.tokens) - 1):
            ivs = {"hook_embed": Add(noise)}
            for j in windows[layer]:
                ivs[f"blocks.{j}.{site}[pos={p}]"] = Patch(clean[f"blocks.{j}.{site}"])
            with torch.no_grad():
                pr = m.run_with_interventions(toks, ivs)[:, -1].softmax(-1)[:, f.answer].mean()
            assert float(t.scores[layer, p]) == pytest.approx(float(pr), rel=1e-5), (layer, p)


def test_severed_trace_equals_naive(tiny_gpt2):
    m, f = tiny_gpt2, _fact(tiny_gpt2)
    t = trace_fact(m, f, "resid", "mlp", CFG, noise_std=0.5, seed=3)
    g = torch.Generator().manual_seed(3)
    noise = torch.zeros(3, len(f.tokens), m.cfg.d_model)
    noise[:, list(f.subject_pos)] = torch.randn(3, len(f.subject_pos), m.cfg.d_model, generator=g) * 0.5
    toks = f.tokens[None].expand(3, -1)
    mlps = [f"blocks.{j}.hook_mlp_out" for j in range(m.cfg.n_layers)]
    _, corrupt = m.run_with_cache(toks, mlps, interventions={"hook_embed": Add(noise)})
    _, clean = m.run_with_cache(f.tokens[None], "blocks.0.hook_resid_post")
    ivs = {"hook_embed": Add(noise), "blocks.0.hook_resid_post[pos=2]": Patch(clean["blocks.0.hook_resid_post"]),
           **{n: Patch(corrupt[n]) for n in mlps}}
    with torch.no_grad():
        pr = m.run_with_interventions(toks, ivs)[:, -1].softmax(-1)[:, f.answer].mean()
    assert float(t.scores[0, 2]) == pytest.approx(float(pr), rel=1e-5)


def test_categories_and_aie_by_hand():
    cats = token_categories((1, 2, 3), 8)
    assert cats == {"first_subject": [1], "middle_subject": [2], "last_subject": [3], "first_subsequent": [4],
                    "further": [5, 6], "last": [7]}
    s1 = torch.arange(16, dtype=torch.float).reshape(2, 8)  # layers 2, 8 positions
    s2 = torch.ones(2, 5)
    t1 = FactTrace("a", tuple("abcdefgh"), (1, 2, 3), 0, "resid", None, s1, 10.0, 1.0)
    t2 = FactTrace("b", tuple("abcde"), (1,), 0, "resid", None, s2, 10.0, 0.0)
    aie = average_indirect_effect([t1, t2])
    assert aie.shape == (2, len(CATEGORIES))
    # first_subject, layer 0: t1 IE = 1 - 1 = 0; t2 IE = 1 - 0 = 1 -> 0.5
    assert aie[0, 0] == pytest.approx(0.5)
    # middle_subject only exists in t1: layer 1 -> s1[1, 2] - 1 = 9
    assert aie[1, 1] == pytest.approx(9.0)
    # further: t1 mean(s1[0,5:7]) - 1 = 4.5; t2 positions 3 -> 1 => 2.75
    assert aie[0, 4] == pytest.approx(2.75)


def test_causal_trace_fact_set_record_roundtrip(tiny_gpt2):
    facts, dropped = load_facts(tiny_gpt2, FACTS[:3])
    assert [f.subject_pos for f in facts][:2] == [(1, 2, 3, 4), (1, 2, 3, 4)] and not dropped
    cfg = TracingConfig(samples=2, window=1, seed=5, noise_reference="subjects")
    res = causal_trace(tiny_gpt2, facts[:2], kinds=("resid", "mlp"), severs=("attn",), cfg=cfg)
    assert res.noise_std == pytest.approx(3 * embedding_std(tiny_gpt2, "subjects", facts[:2]))
    assert set(res.aie) == {"resid", "mlp", "resid_sever_attn"} and len(res.traces) == 6
    assert res.te == pytest.approx(sum(t.p_clean - t.p_corrupted for t in res.traces if t.kind == "resid"
                                       and t.sever is None) / 2)
    back = CausalTraceResult.from_dict(res.to_dict())
    assert back.to_dict() == res.to_dict()
    assert back.to_dict()["schema_version"] == 1 and back.config["noise_reference"] == "subjects"


def test_facts_task_registered(tiny_llama):
    from interpbench.tasks import make_task

    p = make_task("facts", tiny_llama, n=4)
    assert p.name == "facts" and p.n <= 4 and torch.equal(p.clean, p.corrupted)
    assert not torch.equal(p.answer, p.wrong) and (p.answer != p.wrong).all()
    assert len(p.meta["subject_pos"]) == p.n and p.dropped  # other lengths are reported as dropped


def test_bad_config():
    from interpbench.errors import ConfigError

    with pytest.raises(ConfigError):
        TracingConfig(noise_reference="nope")
    with pytest.raises(ConfigError):
        TracingConfig(samples=0)


@pytest.mark.parametrize("kind,sever", [("resid", None), ("mlp", None), ("attn", None), ("resid", "mlp"),
                                        ("resid", "attn")])
def test_fast_path_equals_naive(tiny, kind, sever):
    f = _fact(tiny)
    cfg = TracingConfig(samples=2, window=1, max_rows=6)
    fast = trace_fact(tiny, f, kind, sever, cfg, noise_std=0.5, seed=1, fast=True)
    naive = trace_fact(tiny, f, kind, sever, cfg, noise_std=0.5, seed=1, fast=False)
    torch.testing.assert_close(fast.scores, naive.scores, rtol=1e-4, atol=1e-9)
    assert fast.p_corrupted == naive.p_corrupted


def test_category_positions_only(tiny_gpt2):
    facts, _ = load_facts(tiny_gpt2, FACTS[:1])
    res = causal_trace(tiny_gpt2, facts, kinds=("resid",), cfg=TracingConfig(samples=2), positions="categories")
    s = res.traces[0].scores  # subject 1..4, first subsequent 5, last; BOS and "further" are not run
    run = (~torch.isnan(s[0])).nonzero().flatten().tolist()
    assert run == [1, 2, 3, 4, 5, len(facts[0].tokens) - 1]
    assert torch.isnan(res.aie["resid"][:, CATEGORIES.index("further")]).all()
    assert not torch.isnan(res.aie["resid"][:, CATEGORIES.index("last")]).any()


@pytest.mark.slow
def test_smol_knows_eiffel_and_tracing_is_consistent(smol):
    facts, _ = load_facts(smol, FACTS[:1])
    f = facts[0]
    t = trace_fact(smol, f, "resid", None, TracingConfig(samples=2, max_rows=64), positions=[-1])
    assert int(smol(f.tokens[None])[0, -1].argmax()) == f.answer  # " Paris"
    assert t.p_clean > 0.1 and t.p_corrupted < t.p_clean / 2  # noising the subject breaks the recall
    assert t.scores[-1, -1] == pytest.approx(t.p_clean, rel=1e-3)  # restoring the last state restores it


def test_check_facts_batched_equals_single(tiny_llama):
    from interpbench.tasks.facts import check_facts

    facts, _ = load_facts(tiny_llama, FACTS[:8])
    # make the tiny model "know" one fact: its answer is set to the model's greedy token
    first = facts[0]
    top = int(tiny_llama(first.tokens[None])[0, -1].argmax())
    facts[0] = Fact(first.subject, first.prompt, first.obj, first.tokens, first.subject_pos, top)
    checked = check_facts(tiny_llama, facts)
    single = [int(tiny_llama(f.tokens[None])[0, -1].argmax()) == f.answer for f in facts]
    assert [f.correct for f in checked] == single and single[0]
