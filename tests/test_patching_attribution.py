"""Attribution patching: gradients match finite differences (float64), layouts match exact
patching for every kind, constant number of passes, comparison record."""

from __future__ import annotations

import pytest
import torch

from interpbench.interventions import Add
from interpbench.patching import KINDS, activation_patch, attribution_patch, attribution_vs_exact
from interpbench.patching.attribution import correlation

CLEAN = ["When Mary and John left, John thanked", "When Tom and Anna left, Anna thanked"]
CORRUPT = ["When Alice and Bob left, Carl thanked", "When Sam and Jack left, Paul thanked"]


def _pairs(model):
    tok = model.tokenizer
    ans = torch.tensor([tok(" Mary")["input_ids"][0], tok(" Tom")["input_ids"][0]])
    wrong = torch.tensor([tok(" John")["input_ids"][0], tok(" Anna")["input_ids"][0]])
    return model.to_tokens(CLEAN), model.to_tokens(CORRUPT), ans, wrong


@pytest.fixture(scope="module")
def gpt2_64(tiny_gpt2_path):
    """float64 GPT-2 (Llama's RMSNorm computes in float32 even for float64 inputs, which spoils finite differences)."""
    import interpbench

    return interpbench.load_model(str(tiny_gpt2_path), device="cpu", dtype="float64")


@pytest.mark.parametrize("kind,layer,elem,index", [
    ("resid_pre", 1, (5,), "[pos=5]"), ("attn_out", 0, (7,), "[pos=7]"), ("head_out", 1, (2,), "[head=2]"),
    ("head_out_pos", 0, (6, 1), "[head=1,pos=6]"), ("k", 1, (1,), "[head=1]"), ("neuron", 0, (9,), "[neuron=9]"),
    ("mlp_out", 0, (4,), "[pos=4]")])
def test_gradient_matches_finite_differences(gpt2_64, kind, layer, elem, index):
    m = gpt2_64
    clean, corrupt, ans, wrong = _pairs(m)
    res = attribution_patch(m, clean, corrupt, sites=[kind], metric="logit_diff", answer=ans, wrong=wrong)[kind]
    est = res.per_prompt[(layer,) + elem] - res.corrupted  # first-order change, per prompt
    site = KINDS[kind].site(layer)
    with torch.no_grad():
        _, c_src = m.run_with_cache(clean, [site])
        _, c_base = m.run_with_cache(corrupt, [site])
        delta = c_src[site] - c_base[site]
        eps = 1e-5

        def f(e):
            logits = m.run_with_interventions(corrupt, {site + index: Add(delta, e)})
            last = logits[:, -1]
            return last.gather(1, ans[:, None])[:, 0] - last.gather(1, wrong[:, None])[:, 0]

        fd = (f(eps) - f(-eps)) / (2 * eps)
    assert fd.abs().max() > 1e-6  # the element matters
    torch.testing.assert_close(est, fd, rtol=1e-6, atol=1e-10)


def test_every_kind_in_two_passes_with_exact_layout(tiny):
    clean, corrupt, ans, wrong = _pairs(tiny)
    kinds = sorted(KINDS)
    calls = {"n": 0}
    handle = tiny.hf.register_forward_pre_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    try:
        res = attribution_patch(tiny, clean, corrupt, sites=kinds, metric="logit_diff", answer=ans, wrong=wrong)
    finally:
        handle.remove()
    assert calls["n"] == 2 and set(res) == set(kinds)
    for kind in ("resid_pre", "head_out", "k_pos", "neuron"):
        exact = activation_patch(tiny, clean, corrupt, site=kind, metric="logit_diff", answer=ans, wrong=wrong,
                                 layers=[1] if kind == "neuron" else None)
        got = res[kind].values[1:] if kind == "neuron" else res[kind].values
        assert got.shape == exact.values.shape and res[kind].axes == exact.axes
        assert res[kind].method == "attribution"
    # positions where clean == corrupted tokens at layer 0 have zero difference, hence zero attribution
    same = (clean == corrupt).all(0)
    r = res["resid_pre"]
    torch.testing.assert_close(r.values[0, same], r.corrupted.mean().expand(int(same.sum())))


def test_attribution_vs_exact(tiny_gpt2):
    clean, corrupt, ans, wrong = _pairs(tiny_gpt2)
    cmp = attribution_vs_exact(tiny_gpt2, clean, corrupt, site="resid_pre", metric="logit_diff", answer=ans,
                               wrong=wrong)
    assert -1 <= cmp.pearson <= 1 and -1 <= cmp.spearman <= 1
    assert cmp.pearson == pytest.approx(correlation(cmp.attribution.values, cmp.exact.values)["pearson"])
    d = cmp.to_dict()
    assert d["schema_version"] == 1 and d["attribution"]["method"] == "attribution"
    x = torch.randn(10, dtype=torch.float64)
    assert correlation(x, 2 * x + 1) == pytest.approx({"pearson": 1.0, "spearman": 1.0})


def test_callable_metric_and_noise_direction(tiny_llama):
    clean, corrupt, ans, wrong = _pairs(tiny_llama)
    metric = lambda logits: logits[:, -1, ans].diagonal().mean()  # noqa: E731
    res = attribution_patch(tiny_llama, clean, corrupt, sites=["mlp_out", "resid_pre"], metric=metric,
                            direction="noise")
    assert res["mlp_out"].values.shape == (tiny_llama.cfg.n_layers, clean.shape[1])
    r = res["resid_pre"]
    assert r.per_prompt is None and r.metric.direction == "noise" and r.metric.name.startswith("custom")
    same = (clean == corrupt).all(0)  # layer-0 residual = embedding: unchanged where the tokens agree
    torch.testing.assert_close(r.values[0, same], r.clean.expand(int(same.sum())))
