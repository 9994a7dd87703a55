"""Activation patching: fast path == naive path, equality with transformer_lens.patching on a
TransformerBridge of the same model, records, errors."""

from __future__ import annotations

import copy
import logging

import pytest
import torch

from interpbench.errors import InterpbenchError, ShapeError
from interpbench.patching import KINDS, activation_patch
from interpbench.patching.activation import start_at_layer
from interpbench.patching.result import PatchResult
from interpbench.tracing import leftover_hooks

CLEAN = ["When Mary and John left, John thanked", "When Tom and Anna left, Anna thanked"]
CORRUPT = ["When Alice and Bob left, Carl thanked", "When Sam and Jack left, Paul thanked"]


def _pairs(model):
    tok = model.tokenizer
    clean, corrupt = model.to_tokens(CLEAN), model.to_tokens(CORRUPT)
    ans = torch.tensor([tok(" Mary")["input_ids"][0], tok(" Tom")["input_ids"][0]])
    wrong = torch.tensor([tok(" John")["input_ids"][0], tok(" Anna")["input_ids"][0]])
    return clean, corrupt, ans, wrong


def _metric_fn(ans, wrong):
    def metric(logits):
        last = logits[:, -1]
        return (last.gather(1, ans[:, None]) - last.gather(1, wrong[:, None])).mean()
    return metric


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_fast_equals_naive_every_kind(tiny, kind):
    clean, corrupt, ans, wrong = _pairs(tiny)
    kw = dict(site=kind, metric="logit_diff", answer=ans, wrong=wrong, layers=[1])  # layer 0 skipped by the fast path
    fast = activation_patch(tiny, clean, corrupt, max_tokens=40, **kw)  # small chunks: prefix reuse p0 > 0
    if kind == "neuron":  # d_mlp naive forwards are slow: check a few neurons by hand with Patch
        from interpbench.interventions import Patch
        from interpbench.metrics import logit_diff

        site = KINDS[kind].site(1)
        with torch.no_grad():
            _, src = tiny.run_with_cache(clean, [site])
            for i in (0, 5, 77):
                logits = tiny.run_with_interventions(corrupt, {f"{site}[neuron={i}]": Patch(src[site])})
                torch.testing.assert_close(fast.per_prompt[0, i], logit_diff(logits, ans, wrong), atol=1e-5, rtol=0)
        assert not torch.allclose(fast.values, fast.corrupted.mean().expand_as(fast.values))
        return
    naive = activation_patch(tiny, clean, corrupt, method="naive", **kw)
    assert fast.method == "fast" and naive.method == "naive"
    assert fast.values.shape == naive.values.shape
    torch.testing.assert_close(fast.per_prompt, naive.per_prompt, atol=1e-5, rtol=0)
    assert fast.n_forwards < naive.n_forwards
    assert not torch.allclose(fast.values, fast.corrupted.mean().expand_as(fast.values))  # patches do something


@pytest.mark.parametrize("kind", ["resid_pre", "head_out_pos", "k_pos", "head_out"])
def test_noop_patches_are_skipped_and_still_exact(tiny, kind):
    """Positions where clean and corrupted agree bit for bit (the shared prefix; at layer 0 every
    equal token) are not run; their values must still equal the naive path's."""
    clean, corrupt, ans, wrong = _pairs(tiny)
    kw = dict(site=kind, metric="logit_diff", answer=ans, wrong=wrong, layers=[0, 1])
    fast = activation_patch(tiny, clean, corrupt, **kw)
    naive = activation_patch(tiny, clean, corrupt, method="naive", **kw)
    if kind == "head_out":  # all positions at once: a head's z differs somewhere, nothing to skip
        assert fast.meta["skipped_noop_patches"] == 0
    else:
        assert fast.meta["skipped_noop_patches"] > 0
    torch.testing.assert_close(fast.per_prompt, naive.per_prompt, atol=1e-5, rtol=0)


def test_chunk_partition_covers_each_element_once_within_budget():
    from interpbench.patching.activation import _chunks

    elems = [(p, h) for p in range(3, 17) for h in range(4)]
    for cost in (0.0, 48.0, 1e6):
        for max_tokens in (1, 30, 200, 10_000):
            groups = _chunks(elems, True, 17, 2, max_tokens, cost)
            flat = [e for g in groups for e in g]
            assert sorted(flat) == sorted(elems)
            for g in groups:
                assert len(g) == 1 or len(g) * 2 * (17 - min(e[0] for e in g)) <= max_tokens
    assert len(_chunks(elems, True, 17, 2, 10_000, 1e6)) == 1  # forwards expensive: one group
    assert len(_chunks(elems, True, 17, 2, 10_000, 0.0)) == 14  # forwards free: one group per position


@pytest.mark.parametrize("direction", ["denoise", "noise"])
def test_fast_equals_naive_callable_metric_and_direction(tiny_llama, direction):
    clean, corrupt, ans, wrong = _pairs(tiny_llama)
    metric = lambda logits: logits[:, 4].softmax(-1)[:, ans].sum() + logits[:, -1, 7].mean()  # noqa: E731
    kw = dict(site="attn_out", metric=metric, direction=direction)
    fast = activation_patch(tiny_llama, clean, corrupt, max_tokens=50, **kw)
    naive = activation_patch(tiny_llama, clean, corrupt, method="naive", **kw)
    torch.testing.assert_close(fast.values, naive.values, atol=1e-5, rtol=0)
    assert fast.per_prompt is None and fast.metric.direction == direction
    base = fast.corrupted if direction == "denoise" else fast.clean
    # patches at a position after 4 cannot change the metric's position-4 term: only the last-position term moves
    assert fast.values.shape == (2, clean.shape[1])
    assert torch.isfinite(base)


def test_shapes_follow_the_issue(tiny_llama):
    clean, corrupt, ans, wrong = _pairs(tiny_llama)
    c = tiny_llama.cfg
    T = clean.shape[1]
    kw = dict(metric="logit_diff", answer=ans, wrong=wrong)
    assert activation_patch(tiny_llama, clean, corrupt, site="resid_pre", **kw).values.shape == (c.n_layers, T)
    assert activation_patch(tiny_llama, clean, corrupt, site="head_out", **kw).values.shape == (c.n_layers, c.n_heads)
    assert activation_patch(tiny_llama, clean, corrupt, site="v", **kw).values.shape == (c.n_layers, c.n_kv_heads)
    r = activation_patch(tiny_llama, clean, corrupt, site="q_pos", **kw)
    assert r.values.shape == (c.n_layers, T, c.n_heads) and r.axes == ("layer", "pos", "head")


def test_last_layer_resid_pre_at_last_position_restores_clean(tiny):
    clean, corrupt, ans, wrong = _pairs(tiny)
    r = activation_patch(tiny, clean, corrupt, site="resid_post", metric="logit_diff", answer=ans, wrong=wrong)
    torch.testing.assert_close(r.per_prompt[-1, -1], r.clean, atol=1e-5, rtol=0)  # all info at the last position
    torch.testing.assert_close(r.per_prompt[-1, 0], r.corrupted, atol=1e-5, rtol=0)  # earlier positions: no effect
    norm = r.normalized()
    assert norm[-1, -1].item() == pytest.approx(1.0, abs=1e-4) and norm[-1, 0].item() == pytest.approx(0.0, abs=1e-4)


def test_record_roundtrip_and_normalized(tiny_llama):
    clean, corrupt, ans, wrong = _pairs(tiny_llama)
    r = activation_patch(tiny_llama, clean, corrupt, site="mlp_out", metric="logit_diff", answer=ans, wrong=wrong)
    d = r.to_dict()
    assert d["schema_version"] == 1 and d["metric"]["direction"] == "denoise" and d["axes"] == ["layer", "pos"]
    back = PatchResult.from_dict(d)
    torch.testing.assert_close(back.values, r.values)
    torch.testing.assert_close(back.normalized(), r.normalized())
    assert len(d["labels"]["tokens"]) == clean.shape[1]


def test_errors_and_no_leaks(tiny_llama):
    clean, corrupt, ans, wrong = _pairs(tiny_llama)
    with pytest.raises(ShapeError):
        activation_patch(tiny_llama, clean, corrupt[:, 1:], metric="logit_diff", answer=ans, wrong=wrong)
    with pytest.raises(InterpbenchError, match="unknown patching site kind"):
        activation_patch(tiny_llama, clean, corrupt, site="resid_pree", metric="logit_diff", answer=ans, wrong=wrong)
    with pytest.raises(InterpbenchError, match="needs answer"):
        activation_patch(tiny_llama, clean, corrupt, metric="logit_diff")
    with pytest.raises(InterpbenchError, match="out of range"):
        activation_patch(tiny_llama, clean, corrupt, metric="prob", answer=ans, layers=[7])
    blocks = tiny_llama.hf.model.layers
    with pytest.raises(RuntimeError):
        with start_at_layer(tiny_llama, 1):
            assert len(tiny_llama.hf.model.layers) == 1
            raise RuntimeError("boom")
    assert tiny_llama.hf.model.layers is blocks
    assert leftover_hooks(tiny_llama.hf) == 0


# -- equality with transformer_lens.patching on a TransformerBridge ------------------------------

_TL = [("resid_pre", "get_act_patch_resid_pre"), ("attn_out", "get_act_patch_attn_out"),
       ("mlp_out", "get_act_patch_mlp_out"), ("head_out", "get_act_patch_attn_head_out_all_pos"),
       ("head_out_pos", "get_act_patch_attn_head_out_by_pos"), ("q", "get_act_patch_attn_head_q_all_pos"),
       ("k", "get_act_patch_attn_head_k_all_pos"), ("v_pos", "get_act_patch_attn_head_v_by_pos")]


def _bridge(model, name):
    from transformer_lens.model_bridge import TransformerBridge

    logging.getLogger("transformer_lens").setLevel(logging.ERROR)
    # booting switches the HF model to eager attention in place: boot on a copy
    return TransformerBridge.boot_transformers(name, hf_model=copy.deepcopy(model.hf), tokenizer=model.tokenizer)


@pytest.fixture(scope="module")
def bridges(tiny_llama, tiny_llama_path, tiny_gpt2, tiny_gpt2_path):
    return {"tiny_llama": _bridge(tiny_llama, str(tiny_llama_path)), "tiny_gpt2": _bridge(tiny_gpt2, str(tiny_gpt2_path))}


@pytest.mark.parametrize("model_name", ["tiny_llama", "tiny_gpt2"])
def test_equals_transformer_lens_patching(request, bridges, model_name):
    import transformer_lens.patching as tlp

    model = request.getfixturevalue(model_name)
    bridge = bridges[model_name]
    clean, corrupt, ans, wrong = _pairs(model)
    metric = _metric_fn(ans, wrong)
    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(clean)
        for kind, fn in _TL:
            ref = getattr(tlp, fn)(bridge, corrupt, clean_cache, metric)
            ours = activation_patch(model, clean, corrupt, site=kind, metric=metric)
            named = activation_patch(model, clean, corrupt, site=kind, metric="logit_diff", answer=ans, wrong=wrong)
            assert ref.shape == ours.values.shape, kind
            torch.testing.assert_close(ours.values, ref.float(), atol=1e-5, rtol=0, msg=kind)
            torch.testing.assert_close(named.values, ref.float(), atol=1e-5, rtol=0, msg=kind)


@pytest.mark.slow
def test_equals_transformer_lens_on_smol(smol):
    import pandas as pd
    import transformer_lens.patching as tlp

    from interpbench.tasks import make_task

    p = make_task("ioi", smol, n=2)
    bridge = _bridge(smol, "smollm2-135m")
    metric = _metric_fn(p.answer, p.wrong)
    T = p.clean.shape[1]
    cells = [(0, 2), (8, 4), (15, T - 1), (29, T - 1), (20, 10)]
    with torch.no_grad():
        _, clean_cache = bridge.run_with_cache(p.clean)
        ref = tlp.get_act_patch_resid_pre(bridge, p.corrupted, clean_cache, metric, index_axis_names=None,
                                          index_df=pd.DataFrame(cells, columns=["layer", "pos"]))
    ours = activation_patch(smol, p.clean, p.corrupted, site="resid_pre", metric="logit_diff", answer=p.answer,
                            wrong=p.wrong, layers=sorted({c[0] for c in cells}))
    li = {l: i for i, l in enumerate(ours.labels["layer"])}
    got = torch.stack([ours.values[li[l], q] for l, q in cells])
    torch.testing.assert_close(got, ref.float(), atol=1e-3, rtol=0)
