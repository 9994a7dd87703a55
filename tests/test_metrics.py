"""Metrics: exact values on hand-made logits, conventions, bootstrap CIs."""

from __future__ import annotations

import math

import pytest
import torch

from interpbench.errors import InterpbenchError
from interpbench.metrics import (MetricSpec, answer_loss, answer_prob, kl_to_clean, logit_diff, mean_ci, normalized,
                                 per_prompt)


def _logits():
    x = torch.zeros(2, 3, 4)
    x[0, -1] = torch.tensor([1.0, 3.0, 0.0, 0.0])
    x[1, -1] = torch.tensor([0.0, 0.0, 2.0, -1.0])
    x[0, 0] = torch.tensor([5.0, 0.0, 0.0, 0.0])
    return x


def test_logit_diff_per_prompt():
    x = _logits()
    assert logit_diff(x, torch.tensor([1, 2]), torch.tensor([0, 3])).tolist() == [2.0, 3.0]
    assert logit_diff(x, 0, 1, pos=0).tolist() == [5.0, 0.0]


def test_prob_loss_kl():
    x = _logits()
    p = answer_prob(x, torch.tensor([1, 2]))
    assert torch.allclose(p[0], torch.tensor(math.exp(3) / (math.exp(1) + math.exp(3) + 2)))
    assert torch.allclose(answer_loss(x, torch.tensor([1, 2])), -p.log())
    assert torch.allclose(kl_to_clean(x, x), torch.zeros(2), atol=1e-7)
    y = x.clone()
    y[0, -1, 0] += 1
    kl = kl_to_clean(y, x)
    q, r = x[0, -1].softmax(-1), y[0, -1].softmax(-1)
    assert torch.allclose(kl[0], (q * (q / r).log()).sum()) and kl[1].abs() < 1e-7


def test_normalized_conventions():
    clean, corr = torch.tensor([2.0, 4.0]), torch.tensor([0.0, 0.0])
    patched = torch.tensor([1.0, 1.0])
    assert normalized(patched, clean, corr, "mean_of_differences").item() == pytest.approx((0.5 + 0.25) / 2)
    assert normalized(patched, clean, corr, "difference_of_means").item() == pytest.approx(1.0 / 3.0)
    grid = torch.stack([patched, clean])  # [2 batch]
    assert normalized(grid, clean, corr).tolist() == pytest.approx([0.375, 1.0])
    with pytest.raises(InterpbenchError):
        normalized(patched, clean, corr, "median")


def test_mean_ci_seeded_and_covers_mean():
    v = torch.arange(20.0)
    a, b = mean_ci(v, seed=0), mean_ci(v, seed=0)
    assert a == b and a.mean == 9.5 and a.lo < 9.5 < a.hi and a.n == 20
    assert mean_ci(torch.full((5,), 3.0)).lo == 3.0
    assert mean_ci(v, level=0.5).hi - mean_ci(v, level=0.5).lo < a.hi - a.lo


def test_metric_spec_validates_and_roundtrips():
    s = MetricSpec("logit_diff", "noise", "difference_of_means")
    assert MetricSpec.from_dict(s.to_dict()) == s and s.to_dict()["schema_version"] == 1
    with pytest.raises(InterpbenchError):
        MetricSpec("logit_diff", "sideways")
    with pytest.raises(InterpbenchError):
        per_prompt("logit_diff", _logits(), answer=torch.tensor([0, 1]))
