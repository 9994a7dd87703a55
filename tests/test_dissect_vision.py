"""Vision dissection: scenes and masks, planted units, fast vs hooked path interventions, graph,
unit ablations, wrapping another CNN, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from interpbench.dissect.ablate import SetUnits, ablation_curve, rank_units, unit_effect
from interpbench.dissect.engine import DissectConfig, dissect
from interpbench.dissect.vision.data import scene_batches, upsampled_rows, vision_acts_fn
from interpbench.dissect.vision.model import load_scene_cnn, wrap_cnn
from interpbench.dissect.vision.paths import (build_graph, gradient_path_scores, jaccard, path_effects,
                                              perturbations, top_edges)
from interpbench.dissect.vision.scenes import CLASSES, CONCEPTS, Scenes, make_scenes
from interpbench.errors import InterpbenchError, ShapeError
from interpbench.graphs.ir import CausalGraph


@pytest.fixture(scope="module")
def cnn():
    return load_scene_cnn()


@pytest.fixture(scope="module")
def scenes():
    return make_scenes(120, seed=3)


def test_scenes_masks_are_consistent(scenes):
    m = scenes.masks
    c = {name: i for i, name in enumerate(CONCEPTS)}
    obj = ~m[:, c["background"]]
    shape_any = m[:, [c[k] for k in CLASSES]].any(1)
    assert torch.equal(shape_any, obj)
    assert torch.equal(m[:, c["house"]], m[:, c["wall"]] | m[:, c["roof"]])
    assert not bool((m[:, c["wall"]] & m[:, c["roof"]]).any())
    colours = m[:, [c[k] for k in ("red", "green", "blue", "yellow")]]
    assert torch.equal(colours.sum(1), obj.long())  # each object pixel has exactly one colour
    assert torch.equal(make_scenes(7, seed=4).images, make_scenes(7, seed=4).images)


def test_classifier_is_trained(cnn, scenes):
    with torch.no_grad():
        acc = (cnn(scenes.images).argmax(-1) == scenes.labels).float().mean().item()
    assert acc > 0.9


def test_planted_colour_units_are_labelled(cnn, scenes):
    sites = ["conv1.hook_post"]
    res = dissect(vision_acts_fn(cnn, sites, (32, 32)), scene_batches(scenes, 60), sites, list(CONCEPTS),
                  DissectConfig(tail=1024))
    got = [lab.concept for lab in res["conv1.hook_post"].labels[:4]]
    assert got == ["red", "green", "blue", "yellow"]
    assert res["conv1.hook_post"].exact_quantile


def test_upsampling_layout():
    act = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).reshape(2, 3, 2, 2)
    rows = upsampled_rows(act, (4, 4))
    assert rows.shape == (2 * 16, 3)
    ref = torch.nn.functional.interpolate(act, size=(4, 4), mode="bilinear", align_corners=False)
    assert torch.equal(rows[16 + 5], ref[1, :, 1, 1])


def test_bad_masks_and_sites(cnn, scenes):
    bad = Scenes(scenes.images, scenes.labels, scenes.masks[..., :16, :16], scenes.colour, scenes.texture)
    with pytest.raises(ShapeError, match="at the image resolution"):
        scene_batches(bad)
    with pytest.raises(InterpbenchError, match="without spatial axes"):
        vision_acts_fn(cnn, ["hook_logits"], (32, 32))


@pytest.mark.parametrize("k", [2, 3])
def test_fast_path_effects_equal_hooked(cnn, scenes, k):
    imgs = scenes.images[scenes.labels == 3][:6]
    pairs = [(0, 1), (3, 7), (15, 31), (5, 5)]
    fast = path_effects(cnn, k, imgs, 3, pairs=pairs, chunk=3)
    slow = path_effects(cnn, k, imgs, 3, pairs=pairs, chunk=3, fast=False)
    for p in pairs:
        assert slow[p].item() == pytest.approx(fast[p].item(), abs=1e-5)


def test_path_effect_naive_twin(cnn, scenes):
    """One path removed by hand: subtract x_c * W[d, c] from conv3's pre-activation channel d."""
    imgs = scenes.images[:4]
    c, d = 2, 9
    eff = path_effects(cnn, 3, imgs, 1, pairs=[(c, d)])
    net = cnn.hf
    with torch.no_grad():
        x = net.pool(net.relu2(net.conv2(net.pool(net.relu1(net.conv1(imgs))))))
        pre = net.conv3(x)
        contrib = torch.nn.functional.conv2d(x[:, c:c + 1], net.conv3.weight[d:d + 1, c:c + 1], padding=1)
        pre2 = pre.clone()
        pre2[:, d:d + 1] -= contrib
        want = (net.fc(net.relu3(pre2).mean((2, 3)))[:, 1] - net.fc(net.relu3(pre).mean((2, 3)))[:, 1]).mean()
    assert eff[c, d].item() == pytest.approx(want.item(), abs=1e-5)


def test_gradient_baseline_tracks_effects_in_last_layer(cnn, scenes):
    imgs = scenes.images[scenes.labels == 0][:8]
    e = path_effects(cnn, 3, imgs, 0)
    g = gradient_path_scores(cnn, 3, imgs, 0)
    assert torch.corrcoef(torch.stack([e.flatten(), g.flatten()]))[0, 1] > 0.9
    assert jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    assert top_edges(torch.tensor([[0.0, -3.0], [2.0, 1.0]]), 2) == {(0, 1), (1, 0)}
    assert set(perturbations(imgs)) == {"noise0.05", "noise0.1", "shift1", "shift2"}


def test_graph_is_valid_causal_graph(cnn, scenes):
    imgs = scenes.images[scenes.labels == 3][:4]
    g, tables = build_graph(cnn, imgs, 3, "house", top=3, labels={"conv1.c0": "red"})
    back = CausalGraph.from_dict(g.to_dict())
    assert back.node("logits.house").type == "logits"
    assert sum(e.method == "path_intervention" for e in back.edges) == 6
    assert all(n.type == "neuron" for n in back.nodes[:-1])
    src = {e.source for e in back.edges if e.target == "logits.house"}
    assert src == {n.id for n in back.nodes if n.layer == 2}


def test_unit_ablation_effects_and_curve(cnn, scenes):
    imgs = scenes.images[scenes.labels == 1][:10]
    metric = lambda lg: lg[:, 1]  # noqa: E731
    eff, diff = unit_effect(cnn, "conv3.hook_post", [0, 1], imgs, metric, axis=1)
    with torch.no_grad():
        manual = cnn.hf.fc(cnn.hf.relu3(cnn.hf.conv3(cnn.hf.pool(cnn.hf.relu2(cnn.hf.conv2(
            cnn.hf.pool(cnn.hf.relu1(cnn.hf.conv1(imgs)))))))).index_fill(1, torch.tensor([0, 1]), 0).mean((2, 3)))
    torch.testing.assert_close(diff, manual[:, 1] - cnn(imgs)[:, 1].detach())
    assert eff.ci[0] <= eff.ace <= eff.ci[1]
    ranked = rank_units(cnn, "conv3.hook_post", 32, imgs, metric, axis=1)
    assert ranked[0].ace <= ranked[-1].ace
    curve = ablation_curve(cnn, "conv3.hook_post", [e.units[0] for e in ranked], imgs, metric, [1, 2, 4], axis=1)
    assert curve[2].ace < curve[0].ace < 0


def test_wrap_other_cnn():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2))
    m = wrap_cnn(net)
    assert m.site_names == ["0.hook_in", "0.hook_pre", "0.hook_post", "2.hook_in", "2.hook_pre", "2.hook_post"]
    x = torch.rand(2, 3, 8, 8)
    _, cache = m.run_with_cache(x, ["2.hook_post"], interventions={"0.hook_post": SetUnits((1,), 1)})
    assert cache["2.hook_post"].shape == (2, 5, 8, 8)
