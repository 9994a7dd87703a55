"""Parity: logits equal plain HF logits, cached activations equal TransformerBridge's."""

import copy
import logging

import pytest
import torch

PROMPTS = ["When Mary and John went to the store, John gave a drink to", "The Eiffel Tower is in the city of"]


def _bridge(model):
    from transformer_lens.model_bridge import TransformerBridge

    logging.getLogger("transformer_lens").setLevel(logging.ERROR)
    hf = copy.deepcopy(model.hf)  # the bridge switches attention to eager in place
    return TransformerBridge.boot_transformers(model.cfg.arch, hf_model=hf, tokenizer=model.tokenizer)


def _compare_bridge(model, tol):
    bridge = _bridge(model)
    ids = model.to_tokens(PROMPTS[0])
    ours_logits, ours = model.run_with_cache(ids)
    theirs_logits, theirs = bridge.run_with_cache(ids)
    common = [n for n in model.site_names if n in theirs]
    # every standard site we expose must exist in the bridge too
    assert len(common) == len(model.site_names), set(model.site_names) - set(common)
    worst = {n: (ours[n] - theirs[n].to(ours[n].dtype)).abs().max().item() for n in common}
    bad = {n: d for n, d in worst.items() if not d <= tol}
    assert not bad, bad
    assert (ours_logits - theirs_logits).abs().max().item() <= tol
    return worst


def test_logits_equal_hf_tiny(tiny):
    ids = tiny.to_tokens(PROMPTS[0])
    with torch.no_grad():
        ref = tiny.hf(ids).logits
        ours = tiny(ids)
        logits_cached, _ = tiny.run_with_cache(ids)
    assert (ours - ref).abs().max().item() <= 1e-5
    assert (logits_cached - ref).abs().max().item() <= 1e-4


def test_cache_equals_bridge_tiny(tiny):
    worst = _compare_bridge(tiny, 1e-5)
    assert max(worst.values()) <= 1e-5


@pytest.mark.slow
def test_logits_equal_hf_smollm2(smol):
    ids = smol.to_tokens(["The capital of France is", "The capital of Spain is"])
    with torch.no_grad():
        ref = smol.hf(ids).logits
        assert (smol(ids) - ref).abs().max().item() <= 1e-4
        logits_cached, _ = smol.run_with_cache(ids)  # all sites, eager attention
    assert (logits_cached - ref).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_cache_equals_bridge_smollm2(smol):
    with torch.no_grad():
        _compare_bridge(smol, 1e-4)
