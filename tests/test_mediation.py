"""Causal mediation (interpbench.mediation) and the gender task."""

from __future__ import annotations

import pytest
import torch

from interpbench.mediation import (MediationResult, Mediator, head_mediators, layer_mediators, mediation,
                                   neuron_mediators, prob_ratio)


def _pairs(model, batch=4, pos=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    null = torch.randint(10, 2000, (batch, pos), generator=g)
    setg = null.clone()
    setg[:, 2] = torch.randint(10, 2000, (batch,), generator=g)  # one swapped token, like profession -> man
    answer = torch.randint(10, 2000, (batch,), generator=g)
    wrong = torch.randint(10, 2000, (batch,), generator=g)
    return null, setg, answer, wrong


def test_whole_stream_mediator_carries_everything(tiny):
    """The last layer's residual stream mediates the whole effect: NIE = TE and NDE = 0.
    The embeddings of the swapped token mediate it too (NIE = TE exactly)."""
    null, setg, a, w = _pairs(tiny)
    last = tiny.cfg.n_layers - 1
    res = mediation(tiny, null, setg, [f"blocks.{last}.hook_resid_post", "hook_embed", "blocks.0.attn.hook_z[head=0]"],
                    answer=a, wrong=w, n_boot=200)
    te = res.per_prompt["te"]
    assert te.abs().max() > 1e-4  # the swap changes y
    torch.testing.assert_close(res.per_prompt["nie"][0], te, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(res.per_prompt["nde"][0], torch.zeros_like(te), rtol=0, atol=1e-6)
    torch.testing.assert_close(res.per_prompt["nie"][1], te, rtol=1e-4, atol=1e-6)
    assert res.te.lo <= res.te.mean <= res.te.hi
    # y is Vig's probability ratio
    with torch.no_grad():
        p = tiny(null)[:, -1].softmax(-1)
    y_null = p[torch.arange(4), a] / p[torch.arange(4), w]
    with torch.no_grad():
        p2 = tiny(setg)[:, -1].softmax(-1)
    torch.testing.assert_close(te, p2[torch.arange(4), a] / p2[torch.arange(4), w] / y_null - 1, rtol=1e-4, atol=1e-6)


def _naive(model, base, other, med, y):
    from interpbench.sites import Site

    name = Site.parse(med.site).name
    _, cache = model.run_with_cache(other, [name])
    with torch.no_grad():
        return y(model.run_with_interventions(base, {med.site: med.interventions(cache[name])}))


def test_batched_mediators_equal_naive_runs(tiny_llama):
    m = tiny_llama
    null, setg, a, w = _pairs(m, seed=1)
    g = torch.Generator().manual_seed(0)
    meds = (head_mediators(m, layers=[0]) + neuron_mediators(m, 1, [3, 50]) + layer_mediators(m, "hook_attn_out")
            + [Mediator("blocks.0.hook_resid_post", basis=torch.randn(2, m.cfg.d_model, generator=g)),
               Mediator("blocks.1.hook_resid_pre[pos=2]", basis=torch.randn(m.cfg.d_model, generator=g))])
    y = prob_ratio(a, w)
    res = mediation(m, null, setg, meds, y=y, max_rows=12, n_boot=100)  # several chunks
    y_null = y(m(null)).detach()
    for i, med in enumerate(meds):
        nie = _naive(m, null, setg, med, y) / y_null - 1
        nde = _naive(m, setg, null, med, y) / y_null - 1
        torch.testing.assert_close(res.per_prompt["nie"][i], nie, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(res.per_prompt["nde"][i], nde, rtol=1e-4, atol=1e-6)
    assert res.mediators[-1].endswith(":subspace(1)") and len(res.nie) == len(meds)
    back = MediationResult.from_dict(res.to_dict())
    assert back.to_dict() == res.to_dict()


def test_full_basis_subspace_equals_whole_site(tiny_gpt2):
    """A subspace spanning everything is the whole site: same effects as a plain patch."""
    m = tiny_gpt2
    null, setg, a, w = _pairs(m, seed=2)
    site = "blocks.0.hook_mlp_out"
    res = mediation(m, null, setg, [Mediator(site), Mediator(site, basis=torch.eye(m.cfg.d_model))],
                    y=lambda lg: lg[:, -1, 5] - lg[:, -1, 7], contrast="difference", n_boot=100)
    torch.testing.assert_close(res.per_prompt["nie"][1], res.per_prompt["nie"][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(res.per_prompt["nde"][1], res.per_prompt["nde"][0], rtol=1e-4, atol=1e-5)
    assert res.contrast == "difference" and res.response == "<lambda>"


def test_gender_task(tiny_llama):
    from interpbench.tasks import make_task

    p = make_task("gender", tiny_llama, n=12)
    he = tiny_llama.tokenizer(" he", add_special_tokens=False)["input_ids"][0]
    she = tiny_llama.tokenizer(" she", add_special_tokens=False)["input_ids"][0]
    assert p.n == 12 and set(p.answer.tolist()) <= {he, she} and (p.answer != p.wrong).all()
    assert any("receptionist" in d for d in p.dropped)  # two tokens with the SmolLM2 tokenizer
    for c, k, ans in zip(p.clean_text, p.corrupted_text, p.answer.tolist()):
        assert k.split()[1] == ("man" if ans == he else "woman") and c.split()[2:] == k.split()[2:]
    res = mediation(tiny_llama, p.clean, p.corrupted, ["blocks.0.hook_mlp_out"], answer=p.answer, wrong=p.wrong,
                    n_boot=50)
    assert res.n_prompts == 12 and res.response == "p(answer)/p(wrong)"


def test_bad_inputs(tiny_llama):
    from interpbench.errors import InterpbenchError

    null, setg, a, w = _pairs(tiny_llama)
    with pytest.raises(InterpbenchError, match="same length"):
        mediation(tiny_llama, null, setg[:, :-1], ["hook_embed"], answer=a, wrong=w)
    with pytest.raises(InterpbenchError, match="answer"):
        mediation(tiny_llama, null, setg, ["hook_embed"])
    with pytest.raises(InterpbenchError, match="contrast"):
        mediation(tiny_llama, null, setg, ["hook_embed"], answer=a, wrong=w, contrast="log")


@pytest.mark.slow
def test_smol_gender_total_effect(smol):
    """On SmolLM2, "The man/woman ..." moves the pronoun towards the anti-stereotypical one."""
    from interpbench.tasks import make_task

    p = make_task("gender", smol, n=8)
    last = smol.cfg.n_layers - 1
    res = mediation(smol, p.clean, p.corrupted, [f"blocks.{last}.hook_resid_post"], answer=p.answer,
                    wrong=p.wrong, n_boot=200)
    assert res.te.lo > 0  # set-gender raises p(anti)/p(stereo) on average
    assert res.nie[0].mean == pytest.approx(res.te.mean, rel=1e-3) and abs(res.nde[0].mean) < 1e-3
