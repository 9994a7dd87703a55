"""Streaming statistics, labels and the dissection engine: merges equal one pass, exact quantiles,
naive twins, resumable cache."""

from __future__ import annotations

import pytest
import torch

from interpbench.dissect.engine import Batch, DissectConfig, dissect
from interpbench.dissect.labels import compositional_label, label_units
from interpbench.dissect.stats import IoUCounts, Moments, TailQuantile, TopK, load_stats, save_stats
from interpbench.errors import InterpbenchError, ShapeError


def _data(n=1000, u=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, u, generator=g) * torch.arange(1, u + 1) + torch.arange(u)


def test_moments_merge_equals_one_pass():
    x = _data()
    one = Moments(5)
    for chunk in x.split(100):
        one.update(chunk)
    a, b = Moments(5), Moments(5)
    for chunk in x[:300].split(70):
        a.update(chunk)
    for chunk in x[300:].split(90):
        b.update(chunk)
    a.merge(b)
    torch.testing.assert_close(a.mean, x.double().mean(0))
    torch.testing.assert_close(a.var, x.double().var(0))
    torch.testing.assert_close(a.mean, one.mean)
    torch.testing.assert_close(a.m2, one.m2)
    assert torch.equal(a.max, x.double().max(0).values) and torch.equal(a.min, x.double().min(0).values)


@pytest.mark.parametrize("q", [0.995, 0.99, 0.9])
def test_tail_quantile_exact_vs_torch(q):
    x = _data(2000)
    t = TailQuantile(5, m=256)
    for chunk in x.split(128):
        t.update(chunk)
    assert t.exact(q)
    torch.testing.assert_close(t.quantile(q), torch.quantile(x, q, dim=0), rtol=0, atol=1e-5)


def test_tail_quantile_merge_and_bound():
    x = _data(2000)
    a, b, one = TailQuantile(5, m=64), TailQuantile(5, m=64), TailQuantile(5, m=64)
    a.update(x[:700])
    b.update(x[700:])
    one.update(x)
    assert torch.equal(a.merge(b).top, one.top) and a.n == one.n == 2000
    # 0.9 needs the top 200 values; with 64 kept the estimate is the 64th largest, an upper bound
    assert not a.exact(0.9)
    assert bool((a.quantile(0.9) >= torch.quantile(x, 0.9, dim=0)).all())


def test_topk_merge_equals_naive():
    x = _data(50)
    ids = torch.arange(50)
    a, b = TopK(5, k=4), TopK(5, k=4)
    a.update(x[:20], ids[:20])
    b.update(x[20:], ids[20:])
    a.merge(b)
    ref = x.topk(4, dim=0)
    assert torch.equal(a.values, ref.values) and torch.equal(a.ids, ref.indices)


def test_iou_counts_naive_twin_and_merge():
    g = torch.Generator().manual_seed(1)
    acts = torch.rand(500, 3, generator=g)
    masks = torch.rand(500, 4, generator=g) > 0.7
    th = torch.tensor([0.5, 0.8, 0.95])
    a, b = IoUCounts(th, 4), IoUCounts(th, 4)
    a.update(acts[:200], masks[:200])
    b.update(acts[200:], masks[200:])
    a.merge(b)
    on = acts > th
    for u in range(3):
        for c in range(4):
            inter = (on[:, u] & masks[:, c]).sum()
            union = (on[:, u] | masks[:, c]).sum()
            assert a.iou()[u, c].item() == inter.item() / union.item()
    with pytest.raises(ShapeError, match="one row per token"):
        a.update(acts[:10], masks[:9])


def test_save_load_roundtrip(tmp_path):
    t = TailQuantile(5, m=32)
    t.update(_data(100))
    save_stats(t, tmp_path / "q", done=3, info={"site": "x"})
    back, meta = load_stats(tmp_path / "q")
    assert meta.done == 3 and meta.info == {"site": "x"} and torch.equal(back.top, t.top) and back.n == 100
    assert load_stats(tmp_path / "missing") == (None, None)


def test_label_units_exact():
    iou = torch.tensor([[0.01, 0.03], [0.2, 0.05], [0.04, 0.041]])
    labs = label_units(iou, ["a", "b"], torch.zeros(3), "s", 0.04)
    assert [x.concept for x in labs] == ["", "a", "b"] and [x.best for x in labs] == ["b", "a", "b"]


def test_compositional_finds_planted_formula():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(4000, 5, generator=g) > 0.5
    on = masks[:, 1] & ~masks[:, 3]
    form, v = compositional_label(on, masks, ["a", "b", "c", "d", "e"], beam=5, max_length=2)
    assert form == "(b AND NOT d)" and v == pytest.approx(1.0)


def _toy(n_batches=6, seed=0):
    """Unit 0 fires on concept 'x', unit 1 on 'y', unit 2 is noise."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_batches):
        m = torch.rand(400, 2, generator=g) > torch.tensor([0.99, 0.98])
        acts = torch.rand(400, 3, generator=g) + 5 * m.float() @ torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
        out.append(Batch(acts, m, torch.arange(i * 400, (i + 1) * 400) // 10))
    return out


def test_dissect_engine_labels_and_resume(tmp_path):
    data = _toy()
    cfg = DissectConfig(quantile=0.99, tail=128, save_every=1)
    ref = dissect(lambda a: {"s": a}, lambda: iter(data), ["s"], ["x", "y"], cfg)
    assert [lab.concept for lab in ref["s"].labels][:2] == ["x", "y"] and ref["s"].labels[2].iou < 0.1
    assert ref["s"].exact_quantile
    calls = {"n": 0}

    def flaky(a):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("killed")
        return {"s": a}

    with pytest.raises(RuntimeError):
        dissect(flaky, lambda: iter(data), ["s"], ["x", "y"], cfg, cache=tmp_path)
    n_before = calls["n"]
    res = dissect(flaky, lambda: iter(data), ["s"], ["x", "y"], cfg, cache=tmp_path)
    # resumed after the 3 finished batches of pass 1: 3 more in pass 1, 6 in pass 2
    assert calls["n"] - n_before == 3 + 6
    torch.testing.assert_close(res["s"].iou, ref["s"].iou)
    torch.testing.assert_close(res["s"].thresholds, ref["s"].thresholds)
    assert torch.equal(res["s"].topk.ids, ref["s"].topk.ids)


def test_dissect_bad_input():
    with pytest.raises(InterpbenchError, match="no concepts"):
        dissect(lambda a: {"s": a}, lambda: iter(_toy(1)), ["s"], [], DissectConfig())
    with pytest.raises(InterpbenchError, match="no batches"):
        dissect(lambda a: {"s": a}, lambda: iter([]), ["s"], ["x"], DissectConfig())
