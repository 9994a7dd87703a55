"""SAE folders: ours, SAELens and sparsify layouts, round trips, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import interpbench.sae as isae
from interpbench.sae.arch import SAE
from interpbench.sae.config import SAEConfig
from interpbench.sae.formats import SAEFormatError, detect_format


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _random_sae(arch="topk", scale=3.7, d=16, m=40, **kw) -> SAE:
    cfg = SAEConfig(arch=arch, d_in=d, d_sae=m, k=5 if arch in ("topk", "batchtopk") else None, act_scale=scale,
                    out_scale=scale, model="tiny", site="blocks.0.hook_resid_post", **kw)
    sae = SAE(cfg).init_weights(torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        sae.b_enc.copy_(torch.randn(m, generator=g) * 0.1)
        sae.b_dec.copy_(torch.randn(d, generator=g) * 0.1)
        if arch == "jumprelu":
            sae.log_threshold.copy_(torch.rand(m, generator=g).log() - 2)
        if arch == "batchtopk":
            sae.threshold.fill_(0.05)
    return sae.eval()


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "jumprelu"])
def test_ours_round_trip_is_exact(tmp_path, arch):
    sae = _random_sae(arch)
    isae.save(sae, tmp_path / "s")
    back = isae.load(tmp_path / "s")
    assert back.cfg == sae.cfg
    x = torch.randn(32, 16)
    assert torch.equal(back.encode(x), sae.encode(x))
    assert torch.equal(back(x), sae(x))
    assert back.W_dec.shape == (40, 16)


@pytest.mark.parametrize("arch", ["relu", "topk", "jumprelu", "batchtopk"])
@pytest.mark.parametrize("scale", [1.0, 4.0, 3.7])
def test_saelens_round_trip(tmp_path, arch, scale):
    """ours -> SAELens -> ours: identical outputs (bitwise when the scale folds exactly)."""
    sae = _random_sae(arch, scale=scale)
    isae.save(sae, tmp_path / "sl", format="saelens")
    assert detect_format(tmp_path / "sl") == "saelens"
    cfg = json.loads((tmp_path / "sl" / "cfg.json").read_text())
    assert cfg["architecture"] == {"relu": "standard", "batchtopk": "jumprelu"}.get(arch, arch)
    assert cfg["metadata"]["hook_name"] == "blocks.0.hook_resid_post"
    back = isae.load(tmp_path / "sl")
    x = torch.randn(64, 16) * 5
    if scale in (1.0, 4.0):  # powers of two fold without rounding
        assert torch.equal(back.encode(x), sae.encode(x))
        assert torch.equal(back(x), sae(x))
    else:
        torch.testing.assert_close(back.encode(x), sae.encode(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(back(x), sae(x), rtol=1e-5, atol=1e-5)
    # and back out again: the SAELens files are reproduced exactly
    isae.save(back, tmp_path / "sl2", format="saelens")
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "sl" / "sae_weights.safetensors"), load_file(tmp_path / "sl2" / "sae_weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a if k != "threshold")
    if "threshold" in a:  # JumpReLU keeps log θ internally: exp(log θ) may differ from θ in the last bit
        torch.testing.assert_close(a["threshold"], b["threshold"], rtol=1e-6, atol=0)


def test_sparsify_folder_loads(tmp_path):
    """A folder in sparsify's layout (cfg.json + sae.safetensors) loads and encodes like sparsify."""
    g = torch.Generator().manual_seed(0)
    d, m, k = 12, 30, 4
    enc_w, enc_b = torch.randn(m, d, generator=g), torch.randn(m, generator=g) * 0.1
    W_dec, b_dec = torch.randn(m, d, generator=g), torch.randn(d, generator=g)
    folder = tmp_path / "layers.3"
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps({"expansion_factor": 2, "normalize_decoder": True, "num_latents": m,
                                                 "k": k, "multi_topk": False, "skip_connection": False, "d_in": d}))
    save_file({"encoder.weight": enc_w, "encoder.bias": enc_b, "W_dec": W_dec, "b_dec": b_dec},
              str(folder / "sae.safetensors"))
    sae = isae.load(folder)
    assert sae.cfg.arch == "topk" and sae.cfg.k == k and sae.cfg.d_sae == m
    x = torch.randn(8, d, generator=g)
    pre = torch.relu((x - b_dec) @ enc_w.T + enc_b)  # sparsify's encode
    vals, idx = pre.topk(k, dim=-1)
    ref = torch.zeros(8, m).scatter(-1, idx, vals)
    torch.testing.assert_close(sae.encode(x), ref)
    torch.testing.assert_close(sae.decode(ref), ref @ W_dec + b_dec)
    # and ours -> sparsify -> ours
    isae.save(sae, tmp_path / "sp", format="sparsify")
    assert detect_format(tmp_path / "sp") == "sparsify"
    torch.testing.assert_close(isae.load(tmp_path / "sp")(x), sae(x))


def test_saelens_topk_with_decoder_norm_rescaling_loads(tmp_path):
    """SAELens TopK trained with rescale_acts_by_decoder_norm=True: same function after folding."""
    g = torch.Generator().manual_seed(0)
    d, m, k = 8, 20, 3
    W_enc, b_enc = torch.randn(d, m, generator=g), torch.randn(m, generator=g) * 0.1
    W_dec, b_dec = torch.randn(m, d, generator=g) * 3, torch.randn(d, generator=g)
    (tmp_path / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": d, "d_sae": m, "k": k,
                                                   "apply_b_dec_to_input": True, "normalize_activations": "none",
                                                   "rescale_acts_by_decoder_norm": True, "metadata": {}}))
    save_file({"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}, str(tmp_path / "sae_weights.safetensors"))
    sae = isae.load(tmp_path)
    x = torch.randn(5, d, generator=g)
    n = W_dec.norm(dim=-1)
    pre = ((x - b_dec) @ W_enc + b_enc) * n  # SAELens TopKSAE.encode with rescaling
    vals, idx = pre.topk(k, dim=-1)
    z = torch.zeros(5, m).scatter(-1, idx, torch.relu(vals))
    torch.testing.assert_close(sae(x), (z / n) @ W_dec + b_dec, rtol=1e-5, atol=1e-5)


def test_bad_folders(tmp_path):
    with pytest.raises(SAEFormatError, match="does not exist"):
        isae.load(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(SAEFormatError, match="no cfg.json"):
        isae.load(tmp_path / "x")
    sae = _random_sae("relu")
    with pytest.raises(SAEFormatError, match="sparsify stores TopK"):
        isae.save(sae, tmp_path / "y", format="sparsify")
    isae.save(sae, tmp_path / "z")
    cfg = json.loads((tmp_path / "z" / "cfg.json").read_text())
    cfg["d_sae"] = 41
    (tmp_path / "z" / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAEFormatError, match="weights do not match"):
        isae.load(tmp_path / "z")


def test_shape_error_names_the_site():
    from interpbench.errors import ShapeError

    with pytest.raises(ShapeError, match="width 16.*blocks.0.hook_resid_post"):
        _random_sae().encode(torch.randn(3, 17))


BENCH_PY = Path(__file__).resolve().parents[1] / ".venv-bench" / "bin" / "python"


@pytest.mark.skipif(not BENCH_PY.exists(), reason="SAELens lives in the optional .venv-bench (see bench/sae_training.py)")
def test_saelens_itself_loads_our_export(tmp_path):
    """The exported folder loads in SAELens and encodes/decodes like ours."""
    sae = _random_sae("topk", scale=3.7)
    isae.save(sae, tmp_path / "sl", format="saelens")
    x = torch.randn(16, 16)
    save_file({"x": x}, str(tmp_path / "x.safetensors"))
    code = (
        "import sys, torch; from safetensors.torch import load_file, save_file; from sae_lens import SAE\n"
        "s = SAE.load_from_disk(sys.argv[1]); x = load_file(sys.argv[2])['x']\n"
        "z = s.encode(x); save_file({'z': z.contiguous(), 'r': s.decode(z).contiguous()}, sys.argv[3])\n")
    env = {**os.environ, "PYTHONPATH": ""}
    subprocess.run([str(BENCH_PY), "-c", code, str(tmp_path / "sl"), str(tmp_path / "x.safetensors"),
                    str(tmp_path / "out.safetensors")], check=True, env=env, timeout=300)
    from safetensors.torch import load_file

    out = load_file(str(tmp_path / "out.safetensors"))
    torch.testing.assert_close(out["z"], sae.encode(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["r"], sae(x), rtol=1e-5, atol=1e-5)
