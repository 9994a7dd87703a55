"""SAE architectures, the sparse TopK path, the trainer (resume, NaN), and synthetic ground truth."""

from __future__ import annotations

import json

import pytest
import torch

from interpbench.errors import ConfigError
from interpbench.sae.arch import ARCHS, SAE, geometric_median
from interpbench.sae.config import SAEConfig, TrainConfig
from interpbench.sae.store import TensorSource
from interpbench.sae.synthetic import make_synthetic, mean_max_cosine
from interpbench.sae.train import Trainer, TrainingDiverged, lr_at


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny problems: one intra-op thread avoids oversubscription on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _sae(arch="topk", d=16, m=48, k=4, **kw):
    torch.manual_seed(0)
    sae = SAE(SAEConfig(arch=arch, d_in=d, d_sae=m, k=k if arch in ("topk", "batchtopk") else None, **kw))
    sae.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
    return sae


@pytest.mark.parametrize("with_dead", [False, True])
def test_fast_topk_matches_naive(with_dead):
    """The sparse TopK path (custom backward, embedding_bag decode) equals dense autograd."""
    x = torch.randn(64, 16)
    dead = torch.zeros(48, dtype=torch.bool)
    if with_dead:
        dead[::3] = True
    grads, losses = [], []
    for fast in (True, False):
        sae = _sae()
        out = sae.training_loss(x, x, dead, fast=fast)
        out["loss"].backward()
        losses.append((out["loss"].item(), out["aux"].item(), out["l0"].item()))
        grads.append({n: p.grad.clone() for n, p in sae.named_parameters()})
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    assert (losses[0][1] > 0) == with_dead
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6)


def test_encode_decode_hand_checked():
    """TopK keeps exactly the k largest relu'd pre-activations; decode is z @ W_dec + b_dec."""
    sae = SAE(SAEConfig(arch="topk", d_in=2, d_sae=3, k=1))
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]))
        sae.b_dec.copy_(torch.tensor([0.5, 0.0]))
    z = sae.encode(torch.tensor([[2.5, 1.0]]))  # centred [2, 1] -> pre [2, 1, -1.5]
    assert z.tolist() == [[2.0, 0.0, 0.0]]
    assert sae.decode(z).tolist() == [[2.5, 0.0]]


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_trains(arch):
    data = make_synthetic(n=4096, d=16, n_features=32, k=3, seed=1)
    src = TensorSource(data.acts, batch_size=256, seed=0)
    cfg = SAEConfig(arch=arch, d_in=16, d_sae=64, k=3 if arch in ("topk", "batchtopk") else None,
                    l1_coeff=0.5, l0_coeff=0.05, normalize_decoder=arch != "relu")
    tr = Trainer(cfg, TrainConfig(batch_size=256, n_tokens=256 * 60, lr=3e-3, warmup_steps=5, log_every=5), src,
                 progress=False)
    sae = tr.run()
    first, last = tr.history[0]["fvu"], tr.history[-1]["fvu"]
    assert last < 0.7 * first
    if cfg.normalize_decoder:
        torch.testing.assert_close(sae.W_dec.norm(dim=-1), torch.ones(64))
    if arch == "batchtopk":
        assert float(sae.threshold) > 0
    assert sae.encode(data.acts[:8]).shape == (8, 64)


def test_transcoder_trains():
    g = torch.Generator().manual_seed(0)
    data = make_synthetic(n=4096, d=16, n_features=32, k=3)
    M = torch.randn(16, 24, generator=g)
    y = data.acts @ M
    src = TensorSource(data.acts, y, batch_size=256)
    cfg = SAEConfig(arch="topk", d_in=16, d_sae=64, d_out=24, k=3, out_site="blocks.0.hook_mlp_out")
    tr = Trainer(cfg, TrainConfig(batch_size=256, n_tokens=256 * 40, lr=3e-3, warmup_steps=5), src, progress=False)
    sae = tr.run()
    assert sae(data.acts[:4]).shape == (4, 24)
    assert not sae.apply_b_dec_to_input
    assert tr.history[-1]["fvu"] < 0.9 * tr.history[0]["fvu"]


def test_synthetic_ground_truth_recovered():
    """Issue 6 'done when': mean max cosine >= 0.9 at the true sparsity."""
    data = make_synthetic(n=20_000, d=32, n_features=64, k=3, noise=0.01, seed=0)
    src = TensorSource(data.acts, batch_size=256, seed=0)
    tr = Trainer(SAEConfig(arch="topk", d_in=32, d_sae=128, k=3),
                 TrainConfig(batch_size=256, n_tokens=60_000, lr=3e-3, warmup_steps=10, log_every=50), src,
                 progress=False)
    sae = tr.run()
    mmcs = mean_max_cosine(data.dictionary, sae.W_dec)
    print(f"synthetic mean max cosine: {mmcs:.4f}")
    assert mmcs >= 0.9
    rand = torch.randn(128, 32, generator=torch.Generator().manual_seed(123))
    assert mean_max_cosine(data.dictionary, rand) < 0.6  # the score can fail


def test_resume_gives_the_same_loss_curve(tmp_path):
    data = make_synthetic(n=3000, d=16, n_features=32, k=3)
    sc = SAEConfig(arch="topk", d_in=16, d_sae=64, k=3)
    tc = TrainConfig(batch_size=128, n_tokens=128 * 40, lr=3e-3, warmup_steps=5, log_every=4, checkpoint_every=4,
                     dead_after_tokens=512)  # dead latents appear, so AuxK state is exercised too
    straight = Trainer(sc, tc, TensorSource(data.acts, batch_size=128, seed=3), out=tmp_path / "a", progress=False)
    straight.run()
    first = Trainer(sc, tc, TensorSource(data.acts, batch_size=128, seed=3), out=tmp_path / "b", progress=False)
    first.run(until=22)  # 'killed' after step 22 (checkpoint written there)
    assert not (tmp_path / "b" / "cfg.json").exists()
    second = Trainer(sc, tc, TensorSource(data.acts, batch_size=128, seed=3), out=tmp_path / "b", progress=False)
    assert second.step == 22
    second.run()
    assert [r["loss"] for r in second.history] == [r["loss"] for r in straight.history]
    assert len(straight.history) == 40
    a = json.loads((tmp_path / "a" / "cfg.json").read_text())
    assert a == json.loads((tmp_path / "b" / "cfg.json").read_text())


def test_resume_refuses_other_architecture(tmp_path):
    data = make_synthetic(n=2000, d=16, n_features=32, k=3)
    tc = TrainConfig(batch_size=128, n_tokens=128 * 4)
    Trainer(SAEConfig(arch="topk", d_in=16, d_sae=64, k=3), tc, TensorSource(data.acts, batch_size=128),
            out=tmp_path, progress=False).run()
    with pytest.raises(ConfigError, match="checkpoint .* arch="):
        Trainer(SAEConfig(arch="relu", d_in=16, d_sae=64), tc, TensorSource(data.acts, batch_size=128), out=tmp_path,
                progress=False)


class _PoisonedSource(TensorSource):
    def next(self):
        x, y = super().next()
        if self.epoch * 1000 + self.pos >= 7 * self.batch_size:  # from step 7 on
            x = torch.full_like(x, float("nan"))
        return x, x


def test_nan_aborts_and_keeps_last_good_checkpoint(tmp_path):
    data = make_synthetic(n=4000, d=16, n_features=32, k=3)
    tc = TrainConfig(batch_size=128, n_tokens=128 * 20, log_every=1, checkpoint_every=2)
    tr = Trainer(SAEConfig(arch="topk", d_in=16, d_sae=64, k=3), tc, _PoisonedSource(data.acts, batch_size=128),
                 out=tmp_path, progress=False)
    with pytest.raises(TrainingDiverged, match="step 7"):
        tr.run()
    state = torch.load(tmp_path / "checkpoint" / "state.pt", weights_only=False)
    assert state["step"] == 6
    assert all(torch.isfinite(v).all() for v in state["sae"].values())


def test_lr_schedule():
    tc = TrainConfig(batch_size=1, n_tokens=100, warmup_steps=10, decay_start=0.8)
    assert lr_at(0, tc, 1.0) == pytest.approx(0.1)
    assert lr_at(50, tc, 1.0) == 1.0
    assert lr_at(90, tc, 1.0) == pytest.approx(0.5)


def test_geometric_median_resists_outliers():
    x = torch.cat([torch.zeros(20, 2), torch.full((3, 2), 100.0)])
    assert geometric_median(x).norm() < 1.0 < x.mean(0).norm()


def test_bad_config_messages():
    with pytest.raises(ConfigError, match="unknown SAE architecture"):
        SAEConfig(arch="gated", d_in=4, d_sae=8)
    with pytest.raises(ConfigError, match="needs 0 < k"):
        SAEConfig(arch="topk", d_in=4, d_sae=8)
    with pytest.raises(ConfigError, match="width 16"):
        Trainer(SAEConfig(arch="topk", d_in=8, d_sae=16, k=2), TrainConfig(batch_size=64, n_tokens=640),
                TensorSource(torch.randn(256, 16), batch_size=64), progress=False)
