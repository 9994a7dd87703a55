"""Model loading: every kind of spec, and one clear line for each kind of bad input."""

import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

import interpbench
from interpbench.errors import InterpbenchError, ModelLoadError
from interpbench.models import ModelConfig


def test_load_local_dir_and_hf_object(tiny_llama_path, tokenizer):
    m = interpbench.load_model(str(tiny_llama_path))
    assert (m.cfg.n_layers, m.cfg.n_heads, m.cfg.n_kv_heads, m.cfg.d_model) == (2, 4, 2, 64)
    m2 = interpbench.load_model(m.hf, tokenizer=tokenizer)
    ids = m.to_tokens("hello world")
    assert torch.equal(m(ids), m2(ids))


def test_unknown_model_and_offline_hub_id():
    with pytest.raises(ModelLoadError, match="unknown model"):
        interpbench.load_model("no-such-model")
    with pytest.raises(ModelLoadError, match="no local weights"):
        interpbench.load_model("some-owner/some-model-that-is-not-cached")


def test_truncated_safetensors_is_a_clear_error(tiny_llama_path, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_llama_path, broken)
    f = broken / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="truncated or corrupt"):
        interpbench.load_model(str(broken))


def test_bad_device_and_dtype():
    with pytest.raises(InterpbenchError, match="dtype"):
        interpbench.load_model("smollm2-135m", dtype="float7")
    if not torch.cuda.is_available():
        with pytest.raises(InterpbenchError, match="CUDA"):
            interpbench.load_model("smollm2-135m", device="cuda")


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


def test_plain_module_with_site_map():
    torch.manual_seed(0)
    net = _MLP()
    cfg = ModelConfig("mlp", "MLP", 1, 1, 1, 4, 4, 4, 2, 1)
    m = interpbench.load_model(net, site_map={"blocks.0.hook_resid_pre": ("a", "input"), "blocks.0.hook_mlp_out": ("a", "output")},
                               forward=lambda mod, x, mask: mod(x), cfg=cfg)
    x = torch.randn(3, 1, 4)
    out, cache = m.run_with_cache(x)
    assert torch.equal(cache["blocks.0.hook_mlp_out"], net.a(x))
    with pytest.raises(ModelLoadError, match="does not have"):
        interpbench.load_model(net, site_map={"blocks.0.hook_x": ("zzz", "output")}, forward=lambda m, x, k: m(x), cfg=cfg)


@pytest.mark.slow
def test_bundled_smollm2_and_minilm(smol):
    assert (smol.cfg.n_layers, smol.cfg.d_model, smol.cfg.n_heads, smol.cfg.n_kv_heads) == (30, 576, 9, 3)
    out = smol.generate("The capital of France is", max_new_tokens=2)
    assert " Paris" in smol.to_string(out[0])
    enc = interpbench.load_model("minilm-l6")
    assert not enc.cfg.causal and enc.cfg.n_layers == 6
    _, cache = enc.run_with_cache("A sentence about cats.", ["blocks.*.hook_resid_post", "blocks.0.attn.hook_z"])
    assert cache["blocks.5.hook_resid_post"].shape[-1] == 384


def test_import_is_cheap_and_side_effect_free():
    code = "import sys, interpbench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
