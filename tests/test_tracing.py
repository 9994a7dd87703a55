"""The tracing core on tiny models: exact values, per-head/per-position indexing, leaks, errors."""

import pytest
import torch

from interpbench.errors import ShapeError, SiteError, SiteNeverFired
from interpbench.interventions import Add, Mean, Patch, ProjectInto, ProjectOut, Replace, Scale, Zero
from interpbench.sites import Site, expand
from interpbench.tracing import leftover_hooks

PROMPT = "When Mary and John went to the store"


def test_site_parse_roundtrip():
    for s in ["blocks.3.attn.hook_z[head=2]", "blocks.3.attn.hook_z[head=2,pos=-1]", "hook_embed",
              "blocks.1.mlp.hook_post[pos=0:3,neuron=5]"]:
        assert str(Site.parse(s)) == s
    site = Site.parse("blocks.3.attn.hook_z[head=2,pos=-1]")
    assert (site.layer, site.head, site.pos) == (3, 2, -1)
    with pytest.raises(SiteError):
        Site.parse("blocks.3.attn.hook_z[color=2]")


def test_expand_patterns_and_errors(tiny_llama):
    names = tiny_llama.site_names
    got = [str(s) for s in expand("blocks.*.hook_resid_post", names)]
    assert got == ["blocks.0.hook_resid_post", "blocks.1.hook_resid_post"]
    with pytest.raises(SiteError, match="matches no site"):
        expand("blocks.*.hook_nothing", names)
    with pytest.raises(SiteError, match="Did you mean"):
        expand("blocks.0.hook_resid_psot", names)


def test_zero_final_resid_gives_zero_logits_llama(tiny_llama):
    # RMSNorm(0) = 0 and the Llama unembedding has no bias: logits must be exactly 0.
    logits = tiny_llama.run_with_interventions(PROMPT, {"blocks.1.hook_resid_post": Zero()})
    assert torch.count_nonzero(logits) == 0


def test_zero_final_resid_gpt2_gives_bias_logits(tiny_gpt2):
    # LayerNorm(0) = ln_f.bias, so logits = ln_f.bias @ W_U^T at every position.
    logits = tiny_gpt2.run_with_interventions(PROMPT, {"blocks.1.hook_resid_post": Zero()})
    hf = tiny_gpt2.hf
    expected = hf.transformer.ln_f.bias @ hf.lm_head.weight.T
    assert torch.allclose(logits[0, 0], expected, atol=1e-5) and torch.allclose(logits[0, -1], expected, atol=1e-5)


def test_head_and_position_index(tiny):
    ids = tiny.to_tokens(PROMPT)
    with tiny.trace(cache=["blocks.0.attn.hook_z"], interventions={"blocks.0.attn.hook_z[head=1,pos=2]": Zero()}) as tr:
        tiny(ids)
    z = tr.cache["blocks.0.attn.hook_z"]
    assert torch.count_nonzero(z[:, 2, 1]) == 0
    assert torch.count_nonzero(z[:, 2, 0]) > 0 and torch.count_nonzero(z[:, 3, 1]) > 0
    assert tr.report == {"blocks.0.attn.hook_z[head=1,pos=2]:Zero": 1}


def test_patch_from_cache_reproduces_source_run(tiny):
    a, b = tiny.to_tokens("The cat sat on the mat"), tiny.to_tokens("The dog ran to the car")
    assert a.shape == b.shape
    logits_b, cache_b = tiny.run_with_cache(b, ["blocks.*.hook_resid_pre"])
    patched = tiny.run_with_interventions(a, {"blocks.0.hook_resid_pre": Patch(cache_b["blocks.0.hook_resid_pre"])})
    assert torch.allclose(patched, logits_b, atol=1e-5)


def test_resid_mid_write_equals_resid_pre_patch_propagation(tiny):
    # Patching resid_mid at layer 0 with another run's resid_mid makes everything downstream equal that run.
    a, b = tiny.to_tokens("The cat sat on the mat"), tiny.to_tokens("The dog ran to the car")
    logits_b, cache_b = tiny.run_with_cache(b, ["blocks.0.hook_resid_mid"])
    patched = tiny.run_with_interventions(a, {"blocks.0.hook_resid_mid": Patch(cache_b["blocks.0.hook_resid_mid"])})
    assert torch.allclose(patched, logits_b, atol=1e-4)


def test_compose_scale_add_mean_project(tiny_llama):
    ids = tiny_llama.to_tokens(PROMPT)
    _, c = tiny_llama.run_with_cache(ids, ["blocks.0.hook_resid_post"])
    x = c["blocks.0.hook_resid_post"]
    v = torch.randn(x.shape[-1])
    with tiny_llama.trace(cache=["blocks.0.hook_resid_post"],
                          interventions={"blocks.0.hook_resid_post": [Scale(2.0), Add(v, coeff=0.5)]}) as tr:
        tiny_llama(ids)
    assert torch.allclose(tr.cache["blocks.0.hook_resid_post"], 2 * x + 0.5 * v, atol=1e-5)
    basis = torch.randn(3, x.shape[-1])
    with tiny_llama.trace(cache=["blocks.0.hook_resid_post"], interventions={"blocks.0.hook_resid_post": ProjectOut(basis)}) as tr:
        tiny_llama(ids)
    out = tr.cache["blocks.0.hook_resid_post"]
    assert (out @ basis.T).abs().max() < 1e-4  # nothing left in the subspace
    with tiny_llama.trace(cache=["blocks.0.hook_resid_post"], interventions={"blocks.0.hook_resid_post": ProjectInto(basis)}) as tr:
        tiny_llama(ids)
    into = tr.cache["blocks.0.hook_resid_post"]
    assert torch.allclose(into + out, x, atol=1e-4)  # P x + (I - P) x = x
    mean = x.mean(dim=(0, 1))
    with tiny_llama.trace(cache=["blocks.0.hook_resid_post[pos=1]"], interventions={"blocks.0.hook_resid_post[pos=1]": Mean(mean)}) as tr:
        tiny_llama(ids)
    assert torch.allclose(tr.cache["blocks.0.hook_resid_post[pos=1]"][0], mean)


def test_gradients_flow_through_interventions(tiny_llama):
    ids = tiny_llama.to_tokens(PROMPT)
    vec = torch.zeros(tiny_llama.cfg.d_model, requires_grad=True)
    logits = tiny_llama.run_with_interventions(ids, {"blocks.0.hook_resid_post[pos=-1]": Add(vec)})
    logits[0, -1, 5].backward()
    assert vec.grad is not None and vec.grad.abs().sum() > 0


def test_pattern_read_and_write(tiny):
    ids = tiny.to_tokens(PROMPT)
    _, c = tiny.run_with_cache(ids, ["blocks.0.attn.hook_pattern"])
    p = c["blocks.0.attn.hook_pattern"]
    assert torch.allclose(p.sum(-1), torch.ones_like(p.sum(-1)), atol=1e-5)
    assert torch.count_nonzero(torch.triu(p[0, 0], diagonal=1)) == 0  # causal
    uniform = torch.tril(torch.ones_like(p[0, 0]))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    logits_u = tiny.run_with_interventions(ids, {"blocks.0.attn.hook_pattern": Replace(lambda x: uniform.expand_as(x).clone())})
    assert not torch.allclose(logits_u, tiny(ids))


def test_hooks_removed_after_success_and_exception(tiny):
    ids = tiny.to_tokens(PROMPT)
    assert leftover_hooks(tiny.hf) == 0
    tiny.run_with_cache(ids)
    assert leftover_hooks(tiny.hf) == 0
    with pytest.raises(ValueError):
        with tiny.trace(cache=["blocks.*.hook_resid_post"], interventions={"blocks.0.attn.hook_pattern": Zero()}):
            raise ValueError("user code fails")
    assert leftover_hooks(tiny.hf) == 0
    assert all(not hasattr(m, "_interpbench_attn_hook") for m in tiny.hf.modules())

    def boom(x):
        raise RuntimeError("intervention fails")
    with pytest.raises(RuntimeError, match="intervention fails"):
        tiny.run_with_interventions(ids, {"blocks.1.hook_mlp_out": Replace(boom)})
    assert leftover_hooks(tiny.hf) == 0
    impl = {getattr(m.config, "_attn_implementation", None) for m in tiny.hf.modules() if hasattr(m, "config")}
    assert "interpbench_eager" not in impl


def test_site_that_never_fires_is_an_error(tiny_llama):
    with pytest.raises(SiteNeverFired, match="blocks.1.hook_resid_post"):
        with tiny_llama.trace(interventions={"blocks.1.hook_resid_post": Zero()}):
            pass  # no forward ran


def test_wrong_patch_shape_and_device(tiny_llama):
    ids = tiny_llama.to_tokens(PROMPT)
    with pytest.raises(ShapeError, match="shape"):
        tiny_llama.run_with_interventions(ids, {"blocks.0.hook_resid_post": Patch(torch.zeros(1, 3, 7))})
    with pytest.raises(ShapeError, match="is on meta"):
        tiny_llama.run_with_interventions(ids, {"blocks.0.hook_resid_post": Patch(torch.zeros(1, ids.shape[1], 64, device="meta"))})
    with pytest.raises(ShapeError, match="float64"):
        tiny_llama.run_with_interventions(ids, {"blocks.0.hook_resid_post": Patch(torch.zeros(1, ids.shape[1], 64, dtype=torch.float64))})
    with pytest.raises(ShapeError, match="Replace function"):
        tiny_llama.run_with_interventions(ids, {"blocks.0.hook_resid_post": Replace(lambda x: x[..., :3])})
    with pytest.raises(SiteError, match="no 'head' axis"):
        tiny_llama.run_with_interventions(ids, {"blocks.0.hook_resid_post[head=1]": Zero()})


def test_unequal_prompt_lengths_need_explicit_padding(tiny_llama):
    with pytest.raises(ShapeError, match="different lengths"):
        tiny_llama.to_tokens(["a b", "a b c d e"])
    ids = tiny_llama.to_tokens(["a b", "a b c d e"], padding_side="left")
    assert ids.shape[0] == 2


def test_bos_is_explicit(tiny_llama):
    with_bos = tiny_llama.to_tokens("hello", prepend_bos=True)
    without = tiny_llama.to_tokens("hello", prepend_bos=False)
    assert with_bos.shape[1] == without.shape[1] + 1
    assert with_bos[0, 0].item() == tiny_llama.tokenizer.bos_token_id
