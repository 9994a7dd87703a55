"""Path patching (interpbench.patching.path): equals activation patching where it must, is
exactly zero where causality says so, matches a hand-computed direct path, and the batched
sweep equals the naive loop."""

from __future__ import annotations

import pytest
import torch

from interpbench.interventions import Patch
from interpbench.patching.path import PathPatchResult, path_patch, path_patch_sweep


def _pair(model, seed=0, batch=3, pos=7):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(10, 2000, (batch, pos), generator=g)
    corrupted = clean.clone()
    corrupted[:, 1:4] = torch.randint(10, 2000, (batch, 3), generator=g)
    answer = torch.randint(10, 2000, (batch,), generator=g)
    wrong = torch.randint(10, 2000, (batch,), generator=g)

    def metric(logits):
        rows = torch.arange(logits.shape[0])
        return logits[rows, -1, answer] - logits[rows, -1, wrong]

    return clean, corrupted, metric


def test_last_layer_sender_to_logits_equals_activation_patching(tiny):
    clean, corrupted, metric = _pair(tiny)
    last = tiny.cfg.n_layers - 1
    name = f"blocks.{last}.attn.hook_z"
    _, x = tiny.run_with_cache(corrupted, [name])
    for h in range(tiny.cfg.n_heads):
        site = f"{name}[head={h}]"
        with torch.no_grad():
            act = metric(tiny.run_with_interventions(clean, {site: Patch(x[name])}))
        pp = path_patch(tiny, clean, corrupted, [site], "logits", metric)
        torch.testing.assert_close(pp, act, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(act, metric(tiny(clean)))  # the patch does something


def test_receiver_before_sender_has_exactly_zero_effect(tiny):
    clean, corrupted, metric = _pair(tiny, seed=1)
    clean_m = metric(tiny(clean))
    pp = path_patch(tiny, clean, corrupted, ["blocks.1.attn.hook_z[head=0]"],
                    ["blocks.0.attn.hook_q[head=1]", "blocks.0.attn.hook_v[head=0]"], metric)
    assert torch.equal(pp, clean_m)
    # the same sender into a later receiver does change the metric
    pp2 = path_patch(tiny, clean, corrupted, ["blocks.0.attn.hook_z[head=0]"],
                     ["blocks.1.attn.hook_q[head=1]"], metric)
    assert (pp2 - clean_m).abs().max() > 1e-7  # tiny random GPT-2 has small (but nonzero) effects


def _w_o_slice(model, layer, h):
    mod = model.hf.get_submodule(model.site_def(f"blocks.{layer}.attn.hook_z").module)
    w, dh = mod.weight, model.cfg.d_head
    if type(mod).__name__ != "Conv1D":  # nn.Linear [out, in]
        return w[:, h * dh:(h + 1) * dh].T  # [d_head d_model]
    return w[h * dh:(h + 1) * dh, :]  # GPT-2 Conv1D [in, out]


def test_direct_path_to_logits_matches_hand_computation(tiny):
    """Sender in layer 0, everything else (heads and MLPs) frozen: only the direct path
    head -> residual -> unembedding remains, so logits = unembed(norm(resid_clean + delta))."""
    clean, corrupted, metric = _pair(tiny, seed=2)
    h, last = 1, tiny.cfg.n_layers - 1
    _, c = tiny.run_with_cache(clean, ["blocks.0.attn.hook_z", f"blocks.{last}.hook_resid_post"])
    _, x = tiny.run_with_cache(corrupted, ["blocks.0.attn.hook_z"])
    delta = (x["blocks.0.attn.hook_z"][:, :, h] - c["blocks.0.attn.hook_z"][:, :, h]) @ _w_o_slice(tiny, 0, h)
    resid = c[f"blocks.{last}.hook_resid_post"] + delta
    base = tiny.hf.transformer if hasattr(tiny.hf, "transformer") else tiny.hf.model
    norm = base.ln_f if hasattr(base, "ln_f") else base.norm
    with torch.no_grad():
        expected = metric(tiny.hf.lm_head(norm(resid)))
    got = path_patch(tiny, clean, corrupted, [f"blocks.0.attn.hook_z[head={h}]"], "logits", metric,
                     freeze_mlps=True)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("receivers,freeze", [("logits", False), ("logits", True),
                                              (["blocks.1.attn.hook_q[head=2]"], False),
                                              (["blocks.1.attn.hook_k[head=1]", "blocks.1.ln2.hook_normalized"], True)])
def test_batched_sweep_equals_naive_loop(tiny, receivers, freeze):
    clean, corrupted, metric = _pair(tiny, seed=3, batch=2)
    res = path_patch_sweep(tiny, clean, corrupted, receivers, metric, freeze_mlps=freeze, max_rows=5)
    assert res.values.shape == (tiny.cfg.n_layers, tiny.cfg.n_heads)
    naive = torch.zeros(tiny.cfg.n_layers, tiny.cfg.n_heads)
    for layer in range(tiny.cfg.n_layers):
        for h in range(tiny.cfg.n_heads):
            naive[layer, h] = path_patch(tiny, clean, corrupted, [f"blocks.{layer}.attn.hook_z[head={h}]"],
                                         receivers, metric, freeze_mlps=freeze).mean()
    torch.testing.assert_close(res.values, naive, atol=1e-5, rtol=1e-5)
    assert res.values.std() > 0 or receivers != "logits"
    back = PathPatchResult.from_dict(res.to_dict())
    torch.testing.assert_close(back.values, res.values)
    assert back.receivers == res.receivers


def test_bad_inputs(tiny_llama):
    from interpbench.errors import InterpbenchError

    clean, corrupted, metric = _pair(tiny_llama)
    with pytest.raises(InterpbenchError, match="same length"):
        path_patch(tiny_llama, clean, corrupted[:, :-1], ["blocks.0.attn.hook_z[head=0]"], "logits", metric)
    with pytest.raises(InterpbenchError, match="sender"):
        path_patch(tiny_llama, clean, corrupted, ["blocks.0.hook_resid_post"], "logits", metric)
    with pytest.raises(InterpbenchError, match="unknown site"):
        path_patch(tiny_llama, clean, corrupted, ["blocks.0.attn.hook_z[head=0]"], ["blocks.0.attn.hook_qq"], metric)
